package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unsafe"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// valuesOf returns e's fields as go-redis would parse them: a map in which
// a field given twice keeps its last value.
func valuesOf(e entry) map[string]any {
	out := make(map[string]any, len(e.fields)/2)
	for i := 0; i+1 < len(e.fields); i += 2 {
		out[e.fields[i]] = e.fields[i+1]
	}
	return out
}

// TestReadRawMatchesGoRedis reads the same entries of two streams with
// newReadCmd and with go-redis' typed XREADGROUP (two consumer groups),
// over RESP3 and RESP2, and checks that both read the same streams, IDs
// and fields, whatever bytes the values hold.
func TestReadRawMatchesGoRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	values := [][]any{
		{"payload", "plain", "id", "job-1", "attempt", "1"},
		{"payload", "a\r\nb\r\n$3\r\nxyz\r\n*2\r\n", "id", "crlf"},
		{"payload", "", "id", ""},
		{"payload", string(bin), "h.é", "ünïcode", "h.k", strings.Repeat("v", 70000)},
		{"payload", "first", "payload", "second"}, // a field given twice
	}
	for _, proto := range []int{3, 2} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			ctx := context.Background()
			o := srv.Options()
			o.Protocol = proto
			rdb := goredis.NewClient(o)
			defer rdb.Close()
			b, err := New(rdb, &Options{Namespace: srv.Namespace, Group: "raw", Consumer: "c"})
			if err != nil {
				t.Fatal(err)
			}
			streams := []string{srv.Key(fmt.Sprint(proto), "a"), srv.Key(fmt.Sprint(proto), "b")}
			for _, s := range streams {
				for _, g := range []string{"raw", "typed"} {
					if err := rdb.XGroupCreateMkStream(ctx, s, g, "0").Err(); err != nil {
						t.Fatal(err)
					}
				}
				for _, v := range values {
					if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: s, Values: v}).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}

			read := b.newReadCmd(ctx, streams, 100)
			if err := rdb.Process(ctx, read); err != nil {
				t.Fatal(err)
			}
			got, err := readResult(read)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{
				Group: "typed", Consumer: "c", Streams: []string{streams[0], streams[1], ">", ">"}, Count: 100, Block: -1,
			}).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("raw read %d streams, typed %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.stream != w.Stream || len(g.entries) != len(w.Messages) {
					t.Fatalf("stream %d: raw %q with %d entries, typed %q with %d", i, g.stream, len(g.entries), w.Stream, len(w.Messages))
				}
				for j, m := range w.Messages {
					e := g.entries[j]
					if e.id != m.ID || !e.shared {
						t.Fatalf("entry %d of %s: raw id %q (shared %v), typed %q", j, w.Stream, e.id, e.shared, m.ID)
					}
					if len(e.fields) != 2*(len(values[j])/2) {
						t.Fatalf("entry %s: %d fields read, %d written", m.ID, len(e.fields), len(values[j]))
					}
					if gv := valuesOf(e); !maps.Equal(gv, m.Values) {
						t.Fatalf("entry %s: raw fields %q, typed %q", m.ID, gv, m.Values)
					}
				}
			}
			if d := decodeFields("t", got[0].entries[4], got[0].entries[4].id); string(d.job.Payload) != "second" {
				t.Fatalf("payload given twice decodes as %q, want the last one", d.job.Payload)
			}

			// Nothing new: a nil reply, no error.
			read = b.newReadCmd(ctx, streams, 100)
			if err := rdb.Process(ctx, read); err != nil {
				t.Fatal(err)
			}
			if got, err := readResult(read); err != nil || got != nil {
				t.Fatalf("read with nothing new = %v, %v; want nil, nil", got, err)
			}

			// Pending entries read from 0: one deleted since reads with
			// no fields.
			if err := rdb.XDel(ctx, streams[0], want[0].Messages[1].ID).Err(); err != nil {
				t.Fatal(err)
			}
			pend := goredis.NewRawCmd(ctx, "xreadgroup", "group", "raw", "c", "count", 100, "streams", streams[0], "0")
			if err := rdb.Process(ctx, pend); err != nil {
				t.Fatal(err)
			}
			again, err := readResult(pend)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 1 || len(again[0].entries) != len(values) {
				t.Fatalf("pending read = %+v", again)
			}
			if e := again[0].entries[1]; e.id != want[0].Messages[1].ID || e.fields != nil {
				t.Fatalf("deleted pending entry read as %q with fields %q, want no fields", e.id, e.fields)
			}
			if e := again[0].entries[2]; e.id != want[0].Messages[2].ID || !maps.Equal(valuesOf(e), want[0].Messages[2].Values) {
				t.Fatalf("entry after the deleted one read as %q %q", e.id, e.fields)
			}

			// A missing group is an error reply that isNoGroup knows.
			read = b.newReadCmd(ctx, []string{srv.Key(fmt.Sprint(proto), "none")}, 1)
			if err := rdb.Process(ctx, read); err != nil {
				t.Fatal(err)
			}
			if _, err := readResult(read); !isNoGroup(err) {
				t.Fatalf("read without a group: %v, want NOGROUP", err)
			}
		})
	}
}

// TestParseStreamsBadReplies checks that a reply cut short or not shaped
// like an XREADGROUP reply is an error, and that error replies (simple and
// RESP3 blob) are errors with their text.
func TestParseStreamsBadReplies(t *testing.T) {
	t.Parallel()
	good := "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$7\r\npayload\r\n$2\r\nab\r\n"
	got, err := parseStreams([]byte(good))
	if err != nil || len(got) != 1 || got[0].stream != "s" || got[0].entries[0].id != "1-1" ||
		!slices.Equal(got[0].entries[0].fields, []string{"payload", "ab"}) {
		t.Fatalf("parseStreams(good) = %+v, %v", got, err)
	}
	for i := range len(good) - 1 {
		if _, err := parseStreams([]byte(good[:i])); err == nil {
			t.Errorf("reply cut at %d bytes: no error", i)
		}
	}
	for _, bad := range []string{
		"+OK\r\n",
		":1\r\n",
		"*1\r\n*3\r\n$1\r\ns\r\n*0\r\n",
		"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*1\r\n$3\r\n1-1\r\n",
		"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*1\r\n$9\r\npayload\r\n",
		"*x\r\n",
	} {
		if got, err := parseStreams([]byte(bad)); err == nil {
			t.Errorf("parseStreams(%q) = %+v, no error", bad, got)
		}
	}
	// Counts larger than the reply, even beyond any slice, are errors.
	for _, huge := range []string{
		"*1\r\n*2\r\n$1\r\ns\r\n*9223372036854775807\r\n",
		"*1\r\n*2\r\n$9223372036854775807\r\n",
		"*1\r\n*2\r\n$9223372036854775806\r\n",
		"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*4611686018427387904\r\n",
		"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n%4611686018427387904\r\n",
	} {
		if got, err := parseStreams([]byte(huge)); err == nil {
			t.Errorf("parseStreams(%q) = %+v, no error", huge, got)
		}
	}
	// RESP3 attributes are skipped wherever they come.
	attr := "|1\r\n+key\r\n*2\r\n:1\r\n$1\r\nx\r\n"
	withAttrs := attr + strings.ReplaceAll(good, "$2\r\nab", attr+"$2\r\nab")
	if got, err := parseStreams([]byte(withAttrs)); err != nil || len(got) != 1 ||
		!slices.Equal(got[0].entries[0].fields, []string{"payload", "ab"}) {
		t.Fatalf("parseStreams(%q) = %+v, %v", withAttrs, got, err)
	}
	// An error in place of a value is an error, not a value.
	nested := strings.Replace(good, "$2\r\nab", "!3\r\nERR\r\n", 1)
	if _, err := parseStreams([]byte(nested)); err == nil || err.Error() != "ERR" {
		t.Fatalf("blob error as a field value: %v", err)
	}
	_, err = parseStreams([]byte("-NOGROUP No such key 's'\r\n"))
	var re replyError
	if !errors.As(err, &re) || !isNoGroup(err) {
		t.Fatalf("error reply: %v", err)
	}
	_, err = parseStreams([]byte("!21\r\nSYNTAX invalid syntax\r\n"))
	if err == nil || err.Error() != "SYNTAX invalid syntax" {
		t.Fatalf("blob error reply: %v", err)
	}
	for _, null := range []string{"*-1\r\n", "_\r\n", "*0\r\n", "%0\r\n"} {
		if got, err := parseStreams([]byte(null)); err != nil || got != nil {
			t.Fatalf("parseStreams(%q) = %v, %v; want nil, nil", null, got, err)
		}
	}
}

// FuzzParseStreams checks that no reply makes parseStreams panic, and that
// every field it returns lies inside the reply.
func FuzzParseStreams(f *testing.F) {
	f.Add([]byte("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$7\r\npayload\r\n$2\r\nab\r\n"))
	f.Add([]byte("%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n%1\r\n$7\r\npayload\r\n$2\r\nab\r\n"))
	f.Add([]byte("*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*-1\r\n*2\r\n$3\r\n1-2\r\n_\r\n"))
	f.Add([]byte("*1\r\n*2\r\n$1\r\ns\r\n*9223372036854775807\r\n"))
	f.Add([]byte("|1\r\n+a\r\n+b\r\n*1\r\n*2\r\n$1\r\ns\r\n*0\r\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		streams, err := parseStreams(reply)
		if err != nil {
			return
		}
		n := 0
		for _, s := range streams {
			for _, e := range s.entries {
				for _, v := range e.fields {
					n += len(v)
				}
			}
		}
		if n > len(reply) {
			t.Fatalf("fields of %d bytes from a reply of %d", n, len(reply))
		}
	})
}

// TestOwnCopiesEntryID checks that the ID of an entry read from a whole
// reply, and its receipt, share no memory with the reply, for a topic of
// one partition and of four, and that a job without an id field takes its
// receipt (the copy) as its ID.
func TestOwnCopiesEntryID(t *testing.T) {
	t.Parallel()
	reply := "1765000000000-7|payload|pp"
	parts := strings.Split(reply, "|")
	e := entry{id: parts[0], fields: parts[1:], shared: true}
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	b, err := New(rdb, &Options{Namespace: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, k := range []keys{b.makeKeysIn("t", 1, 0), b.makeKeysIn("t", 4, 2)} {
		owned, receipt := k.own(e)
		d := decodeFields("t", owned, receipt)
		want := "1765000000000-7"
		if k.n > 1 {
			want += "@4/2"
		}
		if owned.id != "1765000000000-7" || receipt != want || d.job.ID != want {
			t.Fatalf("n=%d: id %q, receipt %q, job ID %q", k.n, owned.id, receipt, d.job.ID)
		}
		for _, s := range []string{owned.id, receipt, d.job.ID} {
			if sharesMemory(s, reply) {
				t.Errorf("n=%d: %q is a substring of the reply", k.n, s)
			}
		}
	}
}

// sharesMemory reports whether s lies inside whole's bytes.
func sharesMemory(s, whole string) bool {
	if s == "" || whole == "" {
		return false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	lo := uintptr(unsafe.Pointer(unsafe.StringData(whole)))
	return p >= lo && p < lo+uintptr(len(whole))
}

// TestDecodeFieldsCopiesShared checks that a job decoded from a whole
// reply's substrings keeps none of them: its strings are copies, so the
// reply (every job read with it) is not held in memory by one job.
func TestDecodeFieldsCopiesShared(t *testing.T) {
	t.Parallel()
	reply := "payload|pp|id|job-1|key|tenant|unique_key|u|h.trace|abc|error|boom|reason|failed|handler|h|origin|o|stack|s"
	fields := strings.Split(reply, "|")
	d := decodeFields("t", entry{id: "1-1", fields: fields, shared: true}, "1-1")
	inside := func(s string) bool { return sharesMemory(s, reply) }
	j := d.job
	if j.ID != "job-1" || j.Key != "tenant" || j.UniqueKey != "u" || j.Headers["trace"] != "abc" || j.Failure == nil || j.Failure.Stack != "s" {
		t.Fatalf("decoded %+v", j)
	}
	kept := []string{j.ID, j.Key, j.UniqueKey, j.Headers["trace"], j.Failure.Error, j.Failure.Reason, j.Failure.Handler, j.Failure.Origin, j.Failure.Stack}
	for name := range j.Headers {
		kept = append(kept, name)
	}
	for _, s := range kept {
		if inside(s) {
			t.Errorf("%q is a substring of the reply", s)
		}
	}
}

// benchRead reads the 100 pending entries of a stream again at every
// iteration (XREADGROUP from 0), with read, and decodes them as jobs: the
// same Redis work each time, so two benchmarks differ by the client's
// cost of parsing and decoding.
func benchRead(b *testing.B, read func(ctx context.Context, rdb *goredis.Client, stream string) []streamEntries) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	stream := srv.Key("bench")
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{
			"payload", strings.Repeat("x", 32), "id", fmt.Sprint("job-", i), "attempt", "1", "enqueued_at", "1765000000000",
		}}).Err(); err != nil {
			b.Fatal(err)
		}
	}
	if err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 100, Block: -1}).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, s := range read(ctx, rdb, stream) {
			for _, e := range s.entries {
				if d := decodeFields("t", e, e.id); d.problem == "" {
					n++
				}
			}
		}
		if n != 100 {
			b.Fatalf("%d jobs decoded", n)
		}
	}
}

// BenchmarkReadRaw reads with a RawCmd and parseStreams.
func BenchmarkReadRaw(b *testing.B) {
	benchRead(b, func(ctx context.Context, rdb *goredis.Client, stream string) []streamEntries {
		cmd := goredis.NewRawCmd(ctx, "xreadgroup", "group", "g", "c", "count", 100, "streams", stream, "0")
		if err := rdb.Process(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		ss, err := readResult(cmd)
		if err != nil {
			b.Fatal(err)
		}
		return ss
	})
}

// BenchmarkReadTyped reads with go-redis' typed XREADGROUP (a map per
// entry).
func BenchmarkReadTyped(b *testing.B) {
	benchRead(b, func(ctx context.Context, rdb *goredis.Client, stream string) []streamEntries {
		ss, err := rdb.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, "0"}, Count: 100, Block: -1}).Result()
		if err != nil {
			b.Fatal(err)
		}
		return entriesOf(ss)
	})
}
