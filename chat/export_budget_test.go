package chat

// SetPrekeyBursts sets the per-IP and global prekey bursts of services
// created afterwards and returns a function that restores them.
func SetPrekeyBursts(ip, global int) (restore func()) {
	oldIP, oldGlobal := prekeyIPBurst, prekeyGlobalBurst
	prekeyIPBurst, prekeyGlobalBurst = ip, global
	return func() { prekeyIPBurst, prekeyGlobalBurst = oldIP, oldGlobal }
}
