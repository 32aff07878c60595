package wire

import "fmt"

// Status is a v1 response status (header byte 21 of a response).
type Status uint8

// Statuses the v1 clients understand. Never send a value above
// StatusRateLimited on v1: the flo-python SDK cannot decode it.
const (
	StatusOK           Status = 0
	StatusGeneric      Status = 1
	StatusNotFound     Status = 2
	StatusBadRequest   Status = 3
	StatusUnauthorized Status = 7
	StatusConflict     Status = 8
	StatusInternal     Status = 9
	StatusOverloaded   Status = 10
	StatusRateLimited  Status = 11
)

// String returns the status name used in logs and CLI messages.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusGeneric:
		return "error"
	case StatusNotFound:
		return "not found"
	case StatusBadRequest:
		return "bad request"
	case StatusUnauthorized:
		return "unauthorized"
	case StatusConflict:
		return "conflict"
	case StatusInternal:
		return "internal error"
	case StatusOverloaded:
		return "overloaded"
	case StatusRateLimited:
		return "rate limited"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// MaxErrorMessageBytes bounds an error message in a response. Longer messages
// are truncated (at a UTF-8 boundary), never dropped.
const MaxErrorMessageBytes = 488

// Error is a non-OK outcome with the status it travels as. Domain packages
// return *Error values (or wrap the sentinels below) so the server maps every
// failure to exactly one status.
type Error struct {
	Status  Status
	Message string
}

// Error returns the message, or the status name when there is none: the
// sentinels below have no message, and clients wrap them as
// fmt.Errorf("%w: detail", ErrBadRequest), which reads "bad request: detail".
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Message
}

// Is lets errors.Is match an *Error against a sentinel of the same status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Status == e.Status
}

// Sentinels for errors.Is: any *Error with the same status matches.
var (
	ErrNotFound     = &Error{Status: StatusNotFound}
	ErrBadRequest   = &Error{Status: StatusBadRequest}
	ErrConflict     = &Error{Status: StatusConflict}
	ErrUnauthorized = &Error{Status: StatusUnauthorized}
	ErrOverloaded   = &Error{Status: StatusOverloaded}
	ErrInternal     = &Error{Status: StatusInternal}
)

// Errorf builds an *Error with a formatted message.
func Errorf(s Status, format string, args ...any) *Error {
	return &Error{Status: s, Message: fmt.Sprintf(format, args...)}
}

// TruncateMessage cuts msg to at most MaxErrorMessageBytes without splitting
// a UTF-8 sequence.
func TruncateMessage(msg string) string {
	if len(msg) <= MaxErrorMessageBytes {
		return msg
	}
	cut := MaxErrorMessageBytes
	for cut > 0 && msg[cut]&0xC0 == 0x80 {
		cut--
	}
	return msg[:cut]
}

// StatusOf is the status a reply carries for err: OK for nil, the status of
// an *Error, INTERNAL for anything else.
func StatusOf(err error) Status {
	switch e := err.(type) {
	case nil:
		return StatusOK
	case *Error:
		return e.Status
	}
	return StatusInternal
}
