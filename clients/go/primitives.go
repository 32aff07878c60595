package flo

// initPrimitives wires the per-primitive call groups to c. Each primitive's
// file adds its field here.
func (c *Client) initPrimitives() {}
