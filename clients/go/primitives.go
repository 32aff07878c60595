package flo

// initPrimitives wires the per-primitive call groups to c. Each primitive's
// file adds its field here.
func (c *Client) initPrimitives() {
	c.Queue = &Queue{c: c}
	c.Stream = &Stream{c: c}
	c.Action = &Action{c: c}
	c.Worker = &Worker{c: c}
}
