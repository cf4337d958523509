package cli

import (
	"strings"

	"github.com/claudemesh/claudemesh-go/peer"
)

// topicName strips a leading '#', as the broker does.
func topicName(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "#") }

// topicHint adds the next step for topic-level refusals.
func topicHint(err error, topic string) error {
	var ae *peer.APIError
	if !asAPI(err, &ae) {
		return err
	}
	switch ae.Code() {
	case "not_topic_member":
		return hint(err, "not a member of #%s: run `claudemesh topic join %s`", topic, topic)
	case "topic_not_found":
		return hint(err, "no topic #%s you can see: run `claudemesh topic list`, or create it with `claudemesh topic create %s`", topic, topic)
	case "observer":
		return hint(err, "observers of #%s may read but not post: ask a topic lead", topic)
	case "topic_archived":
		return hint(err, "#%s is archived: it takes no new messages", topic)
	case "seal_not_found":
		return hint(err, "no key for you in #%s yet: a member holding it seals it for you while their `claudemesh topic tail %s` runs; try again then", topic, topic)
	}
	return err
}

// newTopicKeys is the session's keys of one topic (peer.TopicKeys).
func newTopicKeys(s *session, topic string) *peer.TopicKeys { return peer.NewTopicKeys(s.p, topic) }
