package redis

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// Stream entry fields of the wire format. Only payload is required.
const (
	fieldPayload    = "payload"
	fieldID         = "id"
	fieldAttempt    = "attempt"
	fieldEnqueuedAt = "enqueued_at" // unix ms
	fieldError      = "error"
	fieldReason     = "reason"
	fieldHandler    = "handler"
	fieldOrigin     = "origin"
	fieldFailedAt   = "failed_at" // unix ms
	fieldStack      = "stack"     // a panicking handler's stack, at most MaxStack bytes
	headerPrefix    = "h."

	// Written by SnoozeBecause, dropped by the job's next settle.
	fieldSnoozeCause = "snooze_cause"
	fieldSnoozedAt   = "snoozed_at" // unix ms
)

// Stream entry fields of a job's own limits (broker.Message.MaxAttempts and
// Timeout), written only when set.
const (
	fieldMaxAttempts = "max_attempts" // 1 to job.MaxAttempt
	fieldTimeout     = "timeout_ms"   // 1 to broker.MaxTimeout, in ms
)

// Stream entry fields of a unique job (broker.Message.UniqueKey and
// UniqueFor), written only when set. The settles read them to release or
// keep the job's claim (see unique.go).
const (
	fieldUniqueKey = "unique_key"
	fieldUniqueFor = "unique_for_ms" // 1 to broker.MaxUniqueFor, in ms
)

// fieldKey is the stream entry field of a job's ordering key
// (broker.Message.Key), written only when set; a job without one has no
// such field.
const fieldKey = "key"

// MaxStack is the most bytes of a failure's stack ([job.Failure.Stack]) a
// retried or dead-lettered entry stores in its stack field. A longer stack
// keeps its first MaxStack bytes (the innermost frames, where the panic
// happened), cut at a line end, followed by stackTruncated.
const MaxStack = 8 << 10

// stackTruncated ends a stack cut to MaxStack.
const stackTruncated = "\n… (stack truncated)"

// boundStack returns s cut to at most MaxStack bytes.
func boundStack(s string) string {
	if len(s) <= MaxStack {
		return s
	}
	n := MaxStack - len(stackTruncated)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // never split a character
	}
	cut := s[:n]
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	return cut + stackTruncated
}

// encodeFields returns the stream entry fields of j as field, value pairs,
// with attempt and failure f (nil: no failure fields).
func encodeFields(j *job.Job, attempt int, f *job.Failure) []string {
	out := make([]string, 0, 8+2*len(j.Headers)+10)
	out = append(out,
		fieldPayload, string(j.Payload),
		fieldID, j.ID,
		fieldAttempt, strconv.Itoa(attempt),
	)
	if !j.EnqueuedAt.IsZero() {
		out = append(out, fieldEnqueuedAt, strconv.FormatInt(j.EnqueuedAt.UnixMilli(), 10))
	}
	out = appendOptional(out, func(s string) string { return s }, j.MaxAttempts, j.Timeout, j.UniqueKey, j.UniqueFor, j.Key, j.Headers)
	if f != nil {
		out = append(out, failureFields(*f)...)
	}
	return out
}

// appendOptional appends to out, each string made an element by mk, the
// field, value pairs a job writes only when set: its limits, its unique
// key, its ordering key and its headers (sorted by name). Publishing and
// every re-add of a job (encodeFields) write them the same way.
func appendOptional[E any](out []E, mk func(string) E, maxAttempts int, timeout time.Duration, uniqueKey string, uniqueFor time.Duration, key string, headers map[string]string) []E {
	if maxAttempts > 0 {
		out = append(out, mk(fieldMaxAttempts), mk(strconv.Itoa(maxAttempts)))
	}
	if timeout > 0 {
		out = append(out, mk(fieldTimeout), mk(timeoutMS(timeout)))
	}
	if uniqueKey != "" {
		out = append(out, mk(fieldUniqueKey), mk(uniqueKey))
		if uniqueFor > 0 {
			out = append(out, mk(fieldUniqueFor), mk(timeoutMS(uniqueFor)))
		}
	}
	if key != "" {
		out = append(out, mk(fieldKey), mk(key))
	}
	if len(headers) > 0 {
		for _, name := range slices.Sorted(maps.Keys(headers)) {
			out = append(out, mk(headerPrefix+name), mk(headers[name]))
		}
	}
	return out
}

// encodeMember encodes fields as netstrings ("<len>:<bytes>,"), the member
// format of the delayed set: binary-safe, readable in redis-cli and decoded by
// the promotion script.
func encodeMember(fields []string) string {
	var sb strings.Builder
	for _, f := range fields {
		sb.WriteString(strconv.Itoa(len(f)))
		sb.WriteByte(':')
		sb.WriteString(f)
		sb.WriteByte(',')
	}
	return sb.String()
}

// decodeMember parses a delayed-set member back into fields.
func decodeMember(s string) ([]string, error) {
	var out []string
	for len(s) > 0 {
		c := strings.IndexByte(s, ':')
		if c < 0 {
			return nil, errors.New("missing ':'")
		}
		n, err := strconv.Atoi(s[:c])
		if err != nil || n < 0 || c+1+n >= len(s) || s[c+1+n] != ',' {
			return nil, errors.New("bad length")
		}
		out = append(out, s[c+1:c+1+n])
		s = s[c+2+n:]
	}
	if len(out) == 0 || len(out)%2 != 0 {
		return nil, errors.New("odd number of fields")
	}
	return out, nil
}

// entryTime returns the time encoded in a stream entry ID ("<ms>-<seq>").
func entryTime(id string) (time.Time, bool) {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

// validEntryID reports whether id looks like a stream entry ID ("<ms>" or
// "<ms>-<seq>").
func validEntryID(id string) bool {
	ms, seq, hasSeq := strings.Cut(id, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if hasSeq {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// decoded is a stream entry read back as a job.
type decoded struct {
	job      job.Job
	attempt  int    // recorded attempt, in [1, job.MaxAttempt]
	problem  string // why the entry is not a valid job; "" when it is
	warnings []string
}

// decodeEntry turns a stream entry go-redis parsed into a job of topic
// (see decodeFields).
func decodeEntry(topic, entryID, receipt string, values map[string]any) decoded {
	return decodeFields(topic, entryOf(entryID, values), receipt)
}

// decodeFields turns a stream entry into a job of topic. Its job ID is its
// id field or, without one, receipt: the entry's receipt (keys.receipt),
// the ID Publish returned for it. An entry without a payload field is
// reported in problem; a bad attempt or time is corrected and reported in
// warnings. Of a field given twice, the last one counts.
func decodeFields(topic string, e entry, receipt string) decoded {
	d := decoded{attempt: 1}
	j := &d.job
	j.Topic = topic
	j.ID = receipt
	entryID := e.id
	var f job.Failure
	hasFailure := false
	// keep returns a string the job keeps: a copy when it is part of a
	// whole reply.
	keep := func(s string) string {
		if e.shared {
			return strings.Clone(s)
		}
		return s
	}
	payloadSeen := false
	for i := 0; i+1 < len(e.fields); i += 2 {
		k, s := e.fields[i], e.fields[i+1]
		switch {
		case k == fieldPayload:
			j.Payload = []byte(s)
			payloadSeen = true
		case k == fieldID:
			if s != "" {
				j.ID = keep(s)
			} else {
				j.ID = receipt
			}
		case k == fieldAttempt:
			n, ok := d.bounded(k, s, job.MaxAttempt, "using 1")
			if !ok {
				n = 1
			}
			d.attempt = int(n)
		case k == fieldMaxAttempts:
			n, _ := d.bounded(k, s, job.MaxAttempt, "ignored: the retry policy decides")
			j.MaxAttempts = int(n)
		case k == fieldTimeout:
			n, _ := d.bounded(k, s, broker.MaxTimeout.Milliseconds(), "ignored: the timeout middleware decides")
			j.Timeout = time.Duration(n) * time.Millisecond
		case k == fieldUniqueKey:
			j.UniqueKey = keep(s)
		case k == fieldKey:
			j.Key = keep(s)
		case k == fieldUniqueFor:
			n, _ := d.bounded(k, s, broker.MaxUniqueFor.Milliseconds(), "ignored: the key is released at the ack")
			j.UniqueFor = time.Duration(n) * time.Millisecond
		case k == fieldEnqueuedAt:
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				d.warnings = append(d.warnings, fmt.Sprintf("bad enqueued_at %q, using the entry time", truncate(s, 40)))
				continue
			}
			j.EnqueuedAt = time.UnixMilli(ms)
		case strings.HasPrefix(k, headerPrefix):
			if j.Headers == nil {
				j.Headers = map[string]string{}
			}
			j.Headers[keep(k[len(headerPrefix):])] = keep(s)
		case k == fieldError:
			f.Error, hasFailure = keep(s), true
		case k == fieldReason:
			f.Reason, hasFailure = keep(s), true
		case k == fieldHandler:
			f.Handler, hasFailure = keep(s), true
		case k == fieldOrigin:
			f.Origin, hasFailure = keep(s), true
		case k == fieldStack:
			f.Stack, hasFailure = keep(s), true
		case k == fieldFailedAt:
			if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
				f.At = time.UnixMilli(ms)
			}
			hasFailure = true
		}
	}
	if j.EnqueuedAt.IsZero() {
		j.EnqueuedAt, _ = entryTime(entryID)
	}
	if hasFailure {
		failure := f // f stays on the stack: only a failed job allocates one
		j.Failure = &failure
	}
	j.Attempt = d.attempt
	// A malformed entry already dead-lettered keeps having no payload: it
	// is delivered (from the dead-letter topic) as it is, not looped.
	if !payloadSeen && (j.Failure == nil || j.Failure.Reason != ReasonMalformed) {
		d.problem = "stream entry has no payload field"
	}
	return d
}

// bounded parses the value s of field as an integer in [1, hi]. A larger
// value, even one beyond int64, is read as hi; anything else is not ok and
// reads as 0. Both are reported in d.warnings, the second with fallback
// saying what is done instead.
func (d *decoded) bounded(field, s string, hi int64, fallback string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case (err == nil || errors.Is(err, strconv.ErrRange)) && n > hi:
		d.warnings = append(d.warnings, fmt.Sprintf("%s %q above %d, using %d", field, truncate(s, 40), hi, hi))
		return hi, true
	case err != nil || n < 1:
		d.warnings = append(d.warnings, fmt.Sprintf("bad %s %q, %s", field, truncate(s, 40), fallback))
		return 0, false
	}
	return n, true
}

// timeoutMS returns d in whole milliseconds, rounded up, for timeout_ms.
func timeoutMS(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// failureFields returns the failure fields of f, to append to raw fields.
func failureFields(f job.Failure) []string {
	out := []string{fieldError, f.Error, fieldReason, f.Reason}
	if f.Handler != "" {
		out = append(out, fieldHandler, f.Handler)
	}
	if f.Origin != "" {
		out = append(out, fieldOrigin, f.Origin)
	}
	if !f.At.IsZero() {
		out = append(out, fieldFailedAt, strconv.FormatInt(f.At.UnixMilli(), 10))
	}
	if f.Stack != "" {
		out = append(out, fieldStack, boundStack(f.Stack))
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
