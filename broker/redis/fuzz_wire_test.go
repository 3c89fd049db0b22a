package redis

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/conveyor-jobs/conveyor/job"
)

// FuzzDecodeEntry feeds stream entries of arbitrary field values to the wire
// decoder, as any producer could write them with XADD. The decoder must never
// panic; an entry with a payload is a job (payload, ID and headers kept as
// written, attempt at least 1); an entry without one is reported as a
// problem; and a decoded job encodes back to fields that decode to the same
// job.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("orders", "1700000000000-0", true, `{"k":1}`, "job-1", "1", "1700000000000", "tenant", "acme", "", "")
	f.Add("orders", "1-1", true, "", "", "0", "x", "", "", "reason", "permanent")
	f.Add("t", "not-an-id", true, "\x00\xff\xfe", "", "-3", "-1", "h", "\n", "failed_at", "abc")
	f.Add("t", "0-0", false, "", "id-without-payload", "2", "", "", "", "error", "boom")
	f.Add("t.dlq", "99999999999999-5", true, "p", "", "9223372036854775807", "9223372036854775807", "", "", "origin", "t")
	f.Add("t", "5", true, "p", "", "+7", "-9223372036854775808", "a.b", "c", "h.", "x")
	f.Add("t", "1-0", true, "p", "", "4", "1", "", "", "stack", "goroutine 1 [running]:\nmain.f()\n\t/x.go:3 +0x1")
	f.Fuzz(func(t *testing.T, topic, entryID string, hasPayload bool, payload, id, attempt, enqueuedAt, hname, hval, extraKey, extraVal string) {
		values := map[string]any{
			fieldAttempt:         attempt,
			fieldEnqueuedAt:      enqueuedAt,
			headerPrefix + hname: hval,
		}
		if id != "" {
			values[fieldID] = id
		}
		if hasPayload {
			values[fieldPayload] = payload
		}
		if extraKey != "" && extraKey != fieldPayload {
			values[extraKey] = extraVal
		}
		hasPayload = values[fieldPayload] != nil

		d := decodeEntry(topic, entryID, entryID, values)
		j := &d.job
		if !hasPayload {
			if d.problem == "" {
				t.Fatalf("entry without payload decoded with no problem: %+v", values)
			}
			return
		}
		if d.problem != "" {
			t.Fatalf("entry with a payload reported %q: %+v", d.problem, values)
		}
		if string(j.Payload) != values[fieldPayload] {
			t.Fatalf("payload = %q, want %q", j.Payload, values[fieldPayload])
		}
		wantID := entryID
		if v, _ := values[fieldID].(string); v != "" {
			wantID = v
		}
		if j.ID != wantID {
			t.Fatalf("ID = %q, want %q", j.ID, wantID)
		}
		if j.Topic != topic {
			t.Fatalf("Topic = %q, want %q", j.Topic, topic)
		}
		if j.Attempt < 1 || j.Attempt > job.MaxAttempt || d.attempt != j.Attempt {
			t.Fatalf("Attempt = %d (recorded %d), want in [1, %d] and equal", j.Attempt, d.attempt, job.MaxAttempt)
		}
		for k, v := range values {
			if name, ok := strings.CutPrefix(k, headerPrefix); ok && j.Headers[name] != v {
				t.Fatalf("header %q = %q, want %q", name, j.Headers[name], v)
			}
		}
		for _, w := range d.warnings {
			if !utf8.ValidString(w) && utf8.ValidString(attempt) && utf8.ValidString(enqueuedAt) {
				t.Fatalf("warning %q is not valid UTF-8 though the input was", w)
			}
		}

		// Round trip: what the broker writes back for a retry decodes to
		// the same job.
		fields := encodeFields(j, d.attempt, j.Failure)
		again := make(map[string]any, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			again[fields[i]] = fields[i+1]
		}
		d2 := decodeEntry(topic, entryID, entryID, again)
		j2 := &d2.job
		switch {
		case d2.problem != "":
			t.Fatalf("re-encoded entry reported %q", d2.problem)
		case len(d2.warnings) != 0:
			t.Fatalf("re-encoded entry warned %q (fields %q)", d2.warnings, fields)
		case string(j2.Payload) != string(j.Payload), j2.ID != j.ID, j2.Attempt != j.Attempt:
			t.Fatalf("round trip changed the job: %+v -> %+v", *j, *j2)
		case !maps.Equal(j2.Headers, j.Headers):
			t.Fatalf("round trip changed headers: %q -> %q", j.Headers, j2.Headers)
		case j2.EnqueuedAt.UnixMilli() != j.EnqueuedAt.UnixMilli():
			t.Fatalf("round trip changed EnqueuedAt: %v -> %v", j.EnqueuedAt, j2.EnqueuedAt)
		case (j.Failure == nil) != (j2.Failure == nil):
			t.Fatalf("round trip changed Failure: %+v -> %+v", j.Failure, j2.Failure)
		case j.Failure != nil && (j.Failure.Error != j2.Failure.Error || j.Failure.Reason != j2.Failure.Reason ||
			j.Failure.Handler != j2.Failure.Handler || j.Failure.Origin != j2.Failure.Origin ||
			j.Failure.At.UnixMilli() != j2.Failure.At.UnixMilli()):
			t.Fatalf("round trip changed Failure: %+v -> %+v", *j.Failure, *j2.Failure)
		case j.Failure != nil && j2.Failure.Stack != boundStack(j.Failure.Stack):
			t.Fatalf("round trip changed the stack beyond its bound: %q -> %q", j.Failure.Stack, j2.Failure.Stack)
		}
	})
}

// FuzzDecodeMember checks the delayed-set member format: arbitrary input
// never panics the decoder, anything it accepts re-encodes to a member that
// decodes to the same fields, and any even, non-empty list of fields
// (arbitrary bytes, separators included) survives encode then decode.
func FuzzDecodeMember(f *testing.F) {
	f.Add("7:payload,3:abc,", "payload", "x:,y")
	f.Add("0:,0:,", "", "")
	f.Add("3:a,b,", "id", "\x00")
	f.Add("1:a", "h.k", "9:not,nine")
	f.Add("-1:,", "a", "b")
	f.Add("99999999999999999999:x,", ",", ":")
	f.Add("01:a,1:b,", "attempt", "2")
	f.Fuzz(func(t *testing.T, member, k, v string) {
		if fields, err := decodeMember(member); err == nil {
			if len(fields) == 0 || len(fields)%2 != 0 {
				t.Fatalf("decodeMember(%q) accepted %d fields", member, len(fields))
			}
			again, err := decodeMember(encodeMember(fields))
			if err != nil || !slices.Equal(again, fields) {
				t.Fatalf("re-encoding %q: %q, %v", fields, again, err)
			}
		}
		fields := []string{k, v, member, k}
		got, err := decodeMember(encodeMember(fields))
		if err != nil || !slices.Equal(got, fields) {
			t.Fatalf("round trip of %q: %q, %v", fields, got, err)
		}
	})
}

// pwMarker is part of every fuzzed password, so that the password can be
// told apart from the rest of the URL in an error text.
const pwMarker = "PWmark"

// FuzzParseURL builds Redis URLs with a password (scheme, user, password and
// the rest fuzzed) and parses them as Open does, without connecting. Parsing
// never panics, and an error never quotes the password, however malformed
// the URL (unencoded @ : / # ? % in the password included).
func FuzzParseURL(f *testing.F) {
	f.Add("redis://", "", "secret", "127.0.0.1:6379")
	f.Add("rediss://", "user", "p@ss", "127.0.0.1:6380/0?dial_timeout=1s")
	f.Add("redis://", "u", "with/slash", "localhost:6379")
	f.Add("redis://", "", "with#hash", "localhost")
	f.Add("redis://", "", "with?query", "h1:1,h2:2?cluster=true")
	f.Add("redis://", "", "per%cent", "s1:26379,s2:26379?master_name=m")
	f.Add("redis://", "", "colon:inside", "[::1]:6379/15")
	f.Add("http://", "", "pw", "localhost:6379")
	f.Add("redis://", "", "x", "localhost:6379/notadb?pool_size=-1")
	f.Fuzz(func(t *testing.T, scheme, user, password, rest string) {
		// Without "://" nothing marks where a password would start (that
		// case is in the URL table of the reliability tests).
		if strings.Contains(scheme+user+rest, pwMarker) || !strings.HasSuffix(scheme, "://") {
			t.Skip()
		}
		raw := scheme + user + ":" + pwMarker + password + "@" + rest
		client, _, err := newClient(raw, nil)
		if err != nil {
			if strings.Contains(err.Error(), pwMarker) {
				t.Fatalf("error quotes the password: %v", err)
			}
			return
		}
		_ = client.Close()
	})
}
