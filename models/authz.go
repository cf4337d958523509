package models

import "slices"

// The grant rule: nobody hands on more than they hold.
//
// Power in a mesh passes from one credential to another in a few ways: an
// invite (a new member with a role), an API key (capabilities and topic
// scopes), a session or stream token, a successor named on leave (the admin
// role), and a new identity key for a member (the /ws identity and every
// future seal). Every one of them is checked here, against the authority
// of the credential that asks:
//
//   - grant: the capabilities handed on must all be held by the caller, and
//     a caller confined to some topics can hand on only those topics. An
//     invite grants its role's capabilities over the whole mesh, so a
//     topic-scoped credential cannot make one.
//   - meshWide: acts that reach every topic (mesh administration, the audit
//     log, other members) refuse topic-scoped credentials.
//   - whole: acts that dispose of the member itself (leaving, replacing a
//     key that is wider than the caller) need a credential that holds
//     everything the member's role allows, unscoped. A read-only key cannot
//     make its member leave or revoke its member's full key.
//
// A dashboard user acting through their own membership holds exactly what
// the membership's role allows: the user owns the membership, so its
// authority is the role's, unscoped.

// authority is what a caller holds when it acts as member m.
type authority struct {
	role   string
	caps   []string
	scopes []string // nil = every topic
}

// authorityOf is the caller's authority acting as member m (the member the
// principal is, or the user's own membership).
func authorityOf(p *Principal, m *Member) authority {
	if p.IsMember() {
		return authority{role: p.Role, caps: p.Caps, scopes: p.TopicScopes}
	}
	return authority{role: m.Role, caps: CapsForRole(m.Role)}
}

var (
	errScopedCredential = E(KindForbidden, "scoped_credential",
		"this credential is confined to some topics; acting on the whole mesh needs an unscoped credential")
	errWholeCredential = E(KindForbidden, "full_credential_required",
		"this needs a credential that holds everything the member may do (its session token or a key with every capability of its role, unscoped)")
)

// grant checks that caps and scopes (nil = every topic) are within the
// caller's own.
func (a authority) grant(caps, scopes []string) error {
	for _, c := range caps {
		if !slices.Contains(a.caps, c) {
			return E(KindForbidden, "capability_escalation", "you cannot grant %q: your credential does not hold it", c)
		}
	}
	if a.scopes == nil {
		return nil
	}
	if scopes == nil {
		return E(KindForbidden, "scope_escalation", "your credential is confined to some topics; it cannot grant access to every topic")
	}
	for _, t := range scopes {
		if !slices.Contains(a.scopes, t) {
			return E(KindForbidden, "scope_escalation", "you cannot grant topic %q: your credential is not scoped to it", t)
		}
	}
	return nil
}

// meshWide refuses topic-scoped credentials.
func (a authority) meshWide() error {
	if a.scopes != nil {
		return errScopedCredential
	}
	return nil
}

// whole requires a credential that holds every capability of the member's
// role over every topic.
func (a authority) whole() error {
	if a.scopes != nil || a.grant(CapsForRole(a.role), nil) != nil {
		return errWholeCredential
	}
	return nil
}

// covers reports whether the caller holds everything a key holds, so that
// revoking it takes nothing away that the caller could not hand out again.
func (a authority) covers(k *APIKey) bool {
	return a.grant(k.Caps(), k.Scopes()) == nil
}

// RolePrincipal is member m acting with everything its role allows and no
// topic scope: a /ws peer after its signed hello, or a test acting as m.
func RolePrincipal(m *Member) *Principal {
	return &Principal{MemberID: m.ID, MeshID: m.MeshID, Role: m.Role, DisplayName: m.DisplayName, Pubkey: m.PeerPubkey, Caps: CapsForRole(m.Role)}
}
