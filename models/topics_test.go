package models_test

import (
	"context"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// TestPrivateTopicIsInvisibleToNonMembers: upstream let any key read a
// private topic. Here it does not exist for a non-member, on every path.
func TestPrivateTopicIsInvisibleToNonMembers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		alice, eve := joinPeer(t, s, cm, "alice"), joinPeer(t, s, cm, "eve")
		for _, vis := range []string{models.VisibilityPrivate, models.VisibilityDM} {
			name := "secret-" + vis
			if _, err := s.CreateTopic(ctx, alice.P, models.CreateTopicInput{Name: name, Visibility: vis}); err != nil {
				t.Fatal(err)
			}
			in := v1("classified")
			in.Topic = name
			mustPost(t, s, alice.P, in)
			checks := map[string]error{}
			_, checks["get"] = s.TopicFor(ctx, eve.P, name)
			_, checks["history"] = s.History(ctx, eve.P, name, models.HistoryQuery{})
			_, checks["post"] = s.PostMessage(ctx, eve.P, in)
			_, checks["join"] = s.JoinTopic(ctx, eve.P, name)
			_, checks["members"] = s.ListTopicMembers(ctx, eve.P, name, models.PageRequest{})
			_, checks["pending"] = s.PendingSeals(ctx, eve.P, name, models.PageRequest{})
			_, _, checks["key"] = s.MyTopicKey(ctx, eve.P, name, 0)
			_, checks["read"] = s.MarkRead(ctx, eve.P, name, 1)
			for what, err := range checks {
				if !isCode(err, "topic_not_found") {
					t.Errorf("%s %s by a non-member: %v, want topic_not_found", vis, what, err)
				}
			}
			list, err := s.ListTopics(ctx, eve.P, "", false, models.PageRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range list.Items {
				if it.Topic.Name == name {
					t.Errorf("%s topic listed to a non-member", vis)
				}
			}
		}
	})
}

// TestMarkReadNeverJoins: upstream's PATCH read silently subscribed the
// caller. Here a non-member is refused and stays a non-member.
func TestMarkReadNeverJoins(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, owner := newMesh(t, s)
		bob := joinPeer(t, s, cm, "bob")
		if _, err := s.CreateTopic(ctx, owner, models.CreateTopicInput{Name: "news"}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			in := v1("x")
			in.Topic = "news"
			mustPost(t, s, owner, in)
		}
		if _, err := s.MarkRead(ctx, bob.P, "news", 2); !isCode(err, "not_topic_member") {
			t.Errorf("non-member mark read: %v", err)
		}
		ta, err := s.TopicFor(ctx, bob.P, "news")
		if err != nil || ta.Membership != nil {
			t.Fatalf("bob became a member of #news: %+v %v", ta, err)
		}
		// Unread: members see counts, non-members none.
		list, _ := s.ListTopics(ctx, bob.P, "news", false, models.PageRequest{})
		if len(list.Items) != 1 || list.Items[0].Unread != nil {
			t.Errorf("non-member unread = %+v", list.Items)
		}
		list, _ = s.ListTopics(ctx, owner, "news", false, models.PageRequest{})
		if len(list.Items) != 1 || list.Items[0].Unread == nil || *list.Items[0].Unread != 3 {
			t.Errorf("member unread = %+v", list.Items)
		}
		// Marks only move forward.
		if got, _ := s.MarkRead(ctx, owner, "news", 2); got != 2 {
			t.Errorf("mark 2 = %d", got)
		}
		if got, _ := s.MarkRead(ctx, owner, "news", 1); got != 2 {
			t.Errorf("mark back to 1 = %d, want 2", got)
		}
		list, _ = s.ListTopics(ctx, owner, "news", false, models.PageRequest{})
		if *list.Items[0].Unread != 1 {
			t.Errorf("unread after mark = %d, want 1", *list.Items[0].Unread)
		}
	})
}

// TestTopicSearchEscapesLike: upstream passed the search string to LIKE
// raw, so "_" and "%" matched anything.
func TestTopicSearchEscapesLike(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, owner := newMesh(t, s)
		for _, n := range []string{"ab-c", "abxc", "deploys"} {
			if _, err := s.CreateTopic(ctx, owner, models.CreateTopicInput{Name: n}); err != nil {
				t.Fatal(err)
			}
		}
		cases := map[string]int{"b_c": 0, "%": 0, "b-c": 1, "bxc": 1, "dep": 1, "": 4}
		for q, want := range cases {
			list, err := s.ListTopics(ctx, owner, q, false, models.PageRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != want {
				t.Errorf("q=%q matched %d topics, want %d", q, len(list.Items), want)
			}
		}
	})
}

func TestTopicMembershipRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		cm, _ := newMesh(t, s)
		lead, bob, carol := joinPeer(t, s, cm, "lead"), joinPeer(t, s, cm, "bob"), joinPeer(t, s, cm, "carol")
		if _, err := s.CreateTopic(ctx, lead.P, models.CreateTopicInput{Name: "core", Visibility: models.VisibilityPrivate}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateTopic(ctx, lead.P, models.CreateTopicInput{Name: "core"}); !isCode(err, "topic_exists") {
			t.Errorf("duplicate topic: %v", err)
		}
		if _, err := s.AddTopicMember(ctx, lead.P, "core", bob.P.MemberID, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddTopicMember(ctx, bob.P, "core", carol.P.MemberID, ""); !isCode(err, "lead_required") {
			t.Errorf("non-lead adding: %v", err)
		}
		if _, err := s.JoinTopic(ctx, carol.P, "core"); !isCode(err, "topic_not_found") {
			t.Errorf("joining a private topic: %v", err)
		}
		if err := s.RemoveTopicMember(ctx, bob.P, "core", lead.P.MemberID); !isCode(err, "lead_required") {
			t.Errorf("non-lead removing: %v", err)
		}
		if err := s.RemoveTopicMember(ctx, bob.P, "core", bob.P.MemberID); err != nil {
			t.Errorf("leaving: %v", err)
		}
		if _, err := s.TopicFor(ctx, bob.P, "core"); !isCode(err, "topic_not_found") {
			t.Errorf("after leaving: %v", err)
		}
		if err := s.ArchiveTopic(ctx, lead.P, "general"); !isCode(err, "general_topic") {
			t.Errorf("archiving general: %v", err)
		}
		if err := s.ArchiveTopic(ctx, lead.P, "core"); err != nil {
			t.Fatal(err)
		}
		in := v1("late")
		in.Topic = "core"
		if _, err := s.PostMessage(ctx, lead.P, in); !isCode(err, "topic_archived") {
			t.Errorf("post to archived: %v", err)
		}
	})
}
