package actor

// MailboxSlots returns how many slots the mailbox of the local actor at
// pid has allocated, or -1 if there is no such actor.
func (s *System) MailboxSlots(pid PID) int {
	p := s.table.get(pid.ID)
	if p == nil {
		return -1
	}
	return p.mb.Slots()
}
