package redis

// WaitingPublishes returns how many Publish calls wait for the next
// pipeline.
func (b *Broker) WaitingPublishes() int {
	b.pub.mu.Lock()
	defer b.pub.mu.Unlock()
	return len(b.pub.waiting)
}
