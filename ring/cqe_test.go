package ring

import "testing"

func TestNewCQE(t *testing.T) {
	c := NewCQE(42, -11, BufferFlags(513)|CQEFMore)
	id, ok := c.BufferID()
	if c.UserData() != 42 || c.Res() != -11 || !c.More() || !ok || id != 513 || c.Err() == nil {
		t.Fatalf("NewCQE round trip: %+v (buffer %d %v)", c, id, ok)
	}
	if _, ok := NewCQE(1, 0, 0).BufferID(); ok {
		t.Fatal("a CQE without IORING_CQE_F_BUFFER reports a buffer")
	}
}
