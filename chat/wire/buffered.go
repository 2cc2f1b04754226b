package wire

// Buffered returns how many bytes are already read from the stream and not
// yet consumed: a receiver uses it to batch the frames that have arrived
// without blocking for more.
func (r *Reader) Buffered() int { return r.br.Buffered() }
