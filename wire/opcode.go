package wire

// Op is a v1 request opcode (header byte 21 of a request). Values are the
// flo-python SDK's and are only ever appended, never renumbered.
type Op uint8

// System and KV opcodes.
const (
	OpPing      Op = 0x00
	OpKVPut     Op = 0x30
	OpKVGet     Op = 0x31
	OpKVDelete  Op = 0x32
	OpKVScan    Op = 0x33
	OpKVHistory Op = 0x34
)

// Stream and consumer-group opcodes.
const (
	OpStreamAppend     Op = 0x10
	OpStreamRead       Op = 0x11
	OpStreamTrim       Op = 0x12
	OpStreamInfo       Op = 0x13
	OpStreamGroupJoin  Op = 0x21
	OpStreamGroupLeave Op = 0x22
	OpStreamGroupRead  Op = 0x23
	OpStreamGroupAck   Op = 0x24
)

// Queue opcodes. Ack is QUEUE_COMPLETE and nack is QUEUE_FAIL on the wire.
const (
	OpQueueEnqueue    Op = 0x40
	OpQueueDequeue    Op = 0x41
	OpQueueAck        Op = 0x42
	OpQueueNack       Op = 0x44
	OpQueueDLQList    Op = 0x46
	OpQueueDLQRequeue Op = 0x48
	OpQueuePeek       Op = 0x4C
	OpQueueTouch      Op = 0x4D
)

// Action and worker opcodes (the SDK's numbering, not the later server's).
const (
	OpActionRegister Op = 0x60
	OpActionInvoke   Op = 0x61
	OpActionStatus   Op = 0x62
	OpActionList     Op = 0x63
	OpActionDelete   Op = 0x64
	OpWorkerRegister Op = 0x69
	OpWorkerTouch    Op = 0x6A
	OpWorkerAwait    Op = 0x6B
	OpWorkerComplete Op = 0x6C
	OpWorkerFail     Op = 0x6D
	OpWorkerList     Op = 0x6E
)
