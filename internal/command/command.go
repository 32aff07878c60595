// Package command defines the unit of the durable log: a client write (or a
// node-proposed time step) stamped with the time before it is logged, so that
// applying it reads no clock and reaches the same state on every replay and
// every replica. It also defines Result, what applying or reading produced.
package command

import (
	"encoding/binary"
	"errors"

	"github.com/floruntime/flo/wire"
)

// Op identifies what a command does. Client operations reuse their v1 wire
// opcode; node-internal operations use codes from OpPulse upward, which the
// wire never assigns to a request the server accepts.
type Op uint8

// OpPulse applies every time-driven change that is due at the command's time:
// delays ending, leases and ack deadlines expiring, retry backoffs ending.
// The node proposes it from its ticker, so followers never act on their own
// clock.
const OpPulse Op = 0xF0

// Command is one entry of the log. Its fields are the v1 request envelope
// (the namespace already defaulted) plus the stamped time.
type Command struct {
	Op        Op
	Time      int64 // Unix nanoseconds, stamped once before the command is logged
	Namespace string
	Key       []byte
	Value     []byte
	Options   wire.Options
}

// MaxReplyBytes is the default bound on the keys and payloads of one
// reply's list — a KV scan page or history, a queue message list, a stream
// record list: the list stops before the next entry would pass it and
// always holds at least one (docs/decisions/reply-size-limits.md).
const MaxReplyBytes = 64 << 20

// TimeMs returns the command time in Unix milliseconds.
func (c *Command) TimeMs() int64 { return c.Time / 1e6 }

// encodingVersion is the first byte of every encoded command.
const encodingVersion = 1

// Append appends the command's log encoding to dst:
//
//	[version:u8][op:u8][time:i64][v1 request envelope]
func (c *Command) Append(dst []byte) []byte {
	dst = append(dst, encodingVersion, byte(c.Op))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.Time))
	return wire.AppendRequest(dst, &wire.Request{Namespace: c.Namespace, Key: c.Key, Value: c.Value, Options: c.Options})
}

// ErrEncoding reports a log entry this version cannot decode.
var ErrEncoding = errors.New("command: bad encoding")

// Decode decodes a command encoded by Append. The result aliases b.
func Decode(b []byte) (Command, error) {
	if len(b) < 10 || b[0] != encodingVersion {
		return Command{}, ErrEncoding
	}
	r, err := wire.DecodeRequest(b[10:])
	if err != nil {
		return Command{}, errors.Join(ErrEncoding, err)
	}
	return Command{
		Op:        Op(b[1]),
		Time:      int64(binary.LittleEndian.Uint64(b[2:10])),
		Namespace: r.Namespace,
		Key:       r.Key,
		Value:     r.Value,
		Options:   r.Options,
	}, nil
}

// Result is the outcome of applying a command or serving a read.
type Result struct {
	// Body is the OK reply payload.
	Body []byte
	// Err is the domain outcome when not OK; a *wire.Error carries its status.
	Err error
	// Empty says the call found nothing to return yet: a blocking caller
	// parks on its handler's WaitKeys and retries when one is signalled.
	Empty bool
	// Wake lists the keys whose parked callers may now be satisfied. The
	// node signals them only after the command is durable.
	Wake []string
}

// Kind says how the node executes an operation.
type Kind uint8

const (
	// Read is served from current state without going through the log.
	Read Kind = iota + 1
	// Write is logged and applied in log order.
	Write
)

// Handler says how an opcode is executed. Read is set for Read kinds; writes
// go to the machine's Apply.
type Handler struct {
	Kind Kind
	Read func(cmd *Command) Result
	// WaitKeys, for operations that accept BLOCK_MS, names the keys whose
	// signal may satisfy a parked call. The node registers the call under
	// them before its first attempt, so no signal can slip between an empty
	// attempt and parking. A command it returns no keys for does not wait.
	WaitKeys func(cmd *Command) []string
	// Retried, if set, is called on a parked call's command before each
	// attempt after the first, to drop what the first attempt already did
	// for good (a dequeue's acks): a retry must not apply it again at a
	// later time, when it may mean something else.
	Retried func(cmd *Command)
}

// Reply builds an OK result with body.
func Reply(body []byte) Result { return Result{Body: body} }

// Fail builds a result carrying err.
func Fail(err error) Result { return Result{Err: err} }
