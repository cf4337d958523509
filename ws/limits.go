package ws

// A hello whose member already has MaxSessionsPerMember peer sessions open
// on this broker is closed with CloseTooManySessions (4430, reason
// "too_many_sessions"). The peer should not reconnect at once: only after
// one of its member's sessions has ended, or with a long back-off.

// DefaultMaxSessionsPerMember is WS_MAX_SESSIONS_PER_MEMBER's default.
const DefaultMaxSessionsPerMember = 64

// reserveSession holds a place for a new session of member until it is
// registered (release then, or when the handshake fails), so concurrent
// hellos cannot all slip under the cap. A session that is connected
// already is taking its own place over (the old connection is closed), so
// it needs no new one. It reports false when the member is at the cap.
// The count is per broker node.
func (s *Server) reserveSession(member, session string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, again := s.bySession[sessionKey{member, session}]; again {
		return func() {}, true
	}
	if len(s.byMember[member])+s.reserved[member] >= s.cfg.MaxSessionsPerMember {
		return nil, false
	}
	s.reserved[member]++
	done := false
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if done {
			return
		}
		done = true
		if s.reserved[member]--; s.reserved[member] <= 0 {
			delete(s.reserved, member)
		}
	}, true
}
