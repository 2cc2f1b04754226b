package room

// Close stops the gossipsub router. Run does it when it returns; Close is
// for a node that is closed without having run (or whose start failed).
// It is safe to call more than once.
func (s *Service) Close() error {
	if s.psCancel != nil {
		s.psCancel()
	}
	s.issuers.Close()
	s.admitted.Close()
	return nil
}
