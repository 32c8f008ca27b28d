package actor

import "time"

// SetTrimAfter sets how often a grown mailbox is looked at, for a test that
// runs no other System meanwhile; the function it returns restores it.
func SetTrimAfter(d time.Duration) (restore func()) {
	old := trimAfter
	trimAfter = d
	return func() { trimAfter = old }
}

// MailboxSlots returns how many slots the mailbox of the local actor at
// pid has allocated, or -1 if there is no such actor.
func (s *System) MailboxSlots(pid PID) int {
	p := s.table.get(pid.ID)
	if p == nil {
		return -1
	}
	return p.mb.Slots()
}
