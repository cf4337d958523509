package stream

import (
	"errors"

	"github.com/claudemesh/claudemesh-go/models"
)

// Why a stream ended: the fixed codes sent as the reason of an SSE `end`
// event and of a WebSocket subscription's end. Raw error text never goes on
// the wire (it can name database hosts and users).
//
//nolint:gosec // G101: reason codes that name credentials, not credentials
const (
	EndCredentialExpired   = "credential_expired"   // the token or key behind the stream expired
	EndCredentialRevoked   = "credential_revoked"   // the key or the member was revoked
	EndAccessLost          = "access_lost"          // a named topic is no longer visible to the member
	EndMeshArchived        = "mesh_archived"        // the mesh was archived
	EndTopicArchived       = "topic_archived"       // a named topic was archived
	EndSlowConsumer        = "slow_consumer"        // the client fell too far behind
	EndServerShutdown      = "server_shutdown"      // this broker is stopping
	EndDatabaseUnavailable = "database_unavailable" // the database stayed unreachable past the grace period
	EndInternal            = "internal"             // anything else; the broker's log says more
)

// endCodes are the domain error codes that keep their own name as an end
// reason; any other domain error means access to what was followed is gone.
var endCodes = map[string]bool{
	EndCredentialExpired: true, EndCredentialRevoked: true, EndMeshArchived: true, EndTopicArchived: true,
}

// EndReason maps the error that ends a stream to its fixed code, and says
// whether the client should reconnect (with Last-Event-ID) or give up.
// Transient reports a check that could not be made (the database did not
// answer): the caller retries and ends the stream only when that lasts past
// a grace period. Only a definite refusal ends a stream at once.
func EndReason(err error) (code string, reconnect, transient bool) {
	switch {
	case errors.Is(err, ErrSlowConsumer):
		return EndSlowConsumer, true, false
	case errors.Is(err, ErrGap):
		// A gap is unfilled only when the database read failed.
		return EndDatabaseUnavailable, true, false
	case models.IsUnavailable(err):
		return EndDatabaseUnavailable, true, true
	}
	if de, ok := models.AsError(err); ok {
		if endCodes[de.Code] {
			return de.Code, false, false
		}
		if de.Kind == models.KindUnauthorized {
			return EndCredentialRevoked, false, false
		}
		return EndAccessLost, false, false
	}
	// An error that is neither a refusal nor a known outage: the credential
	// was not found wanting, so it is retried like an outage.
	return EndInternal, true, true
}

// endPayload is the data of an SSE `end` event.
type endPayload struct {
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
	// LastEventID, with reconnect, is the seq of the last message the
	// stream wrote: reconnect with it as Last-Event-ID (or ?since=).
	LastEventID string `json:"lastEventId,omitempty"`
}
