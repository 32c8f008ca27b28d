package actor

// DeadLetter is a message that could not be delivered: its target did not
// exist, had stopped, or was stopped with the message still queued; or it was
// a reply whose Request had already given up.
type DeadLetter struct {
	To      PID
	From    PID
	Message any
	Reason  error
}

func (s *System) deadLetter(to, from PID, msg any, reason error) {
	s.deadLetters.Add(1)
	if s.cfg.deadLetterFn != nil {
		s.cfg.deadLetterFn(DeadLetter{To: to, From: from, Message: msg, Reason: reason})
	}
}

// DeadLetters returns how many messages have gone to dead letters since the
// System started.
func (s *System) DeadLetters() uint64 { return s.deadLetters.Load() }

// DeadLetter records a message that a Remote accepted from Send but could
// not deliver, and that nobody tracks: for example one that failed to
// encode after Send had returned. It is counted and observed like the
// System's own dead letters.
func (s *System) DeadLetter(to, from PID, msg any, reason error) {
	s.deadLetter(to, from, msg, reason)
}
