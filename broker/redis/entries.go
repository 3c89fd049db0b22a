package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// streamEntries is what one read got from one stream, in stream order.
type streamEntries struct {
	stream  string
	entries []entry
}

// entry is one stream entry: its ID and its fields as field, value pairs,
// in the entry's order (nil for an entry deleted while pending).
type entry struct {
	id     string
	fields []string
	// shared: the fields are substrings of a whole reply (parseStreams),
	// so decodeFields copies the ones a job keeps, which would otherwise
	// hold every job of the reply in memory.
	shared bool
}

// own returns e with an ID that is not part of a whole reply, and its
// receipt in k, in one allocation at most (the ID is the receipt's
// start).
func (k keys) own(e entry) (entry, string) {
	if k.n <= 1 {
		if e.shared {
			e.id = strings.Clone(e.id)
		}
		return e, e.id
	}
	r := k.receipt(e.id)
	e.id = r[:len(e.id)]
	return e, r
}

// entryOf returns the entry of a stream entry go-redis parsed, its fields
// in sorted order.
func entryOf(id string, values map[string]any) entry {
	fields := make([]string, 0, 2*len(values))
	for _, f := range slices.Sorted(maps.Keys(values)) {
		fields = append(fields, f, valueString(values[f]))
	}
	return entry{id: id, fields: fields}
}

// valueString returns a field value go-redis or a script reply gave as a
// string.
func valueString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	case nil:
		return ""
	default:
		return fmt.Sprint(s)
	}
}

// entriesOf returns the entries of typed XREADGROUP replies.
func entriesOf(ss []goredis.XStream) []streamEntries {
	out := make([]streamEntries, len(ss))
	for i, s := range ss {
		out[i] = streamEntries{stream: s.Stream, entries: make([]entry, len(s.Messages))}
		for j, m := range s.Messages {
			out[i].entries[j] = entryOf(m.ID, m.Values)
		}
	}
	return out
}

// newReadCmd returns an XREADGROUP of b's group and consumer over streams,
// each from ">", COUNT count, without BLOCK, whose reply go-redis keeps as
// it came (RESP bytes) for readResult. go-redis would parse every entry
// into a map with a string per field and value; readResult makes one
// string of the whole reply and slices it.
func (b *Broker) newReadCmd(ctx context.Context, streams []string, count int) *goredis.RawCmd {
	args := make([]any, 0, 7+2*len(streams))
	args = append(args, "xreadgroup", "group", b.o.Group, b.o.Consumer, "count", count, "streams")
	for _, s := range streams {
		args = append(args, s)
	}
	for range streams {
		args = append(args, ">")
	}
	return goredis.NewRawCmd(ctx, args...)
}

// readResult returns the entries of a read newReadCmd sent: none for a nil
// reply, and an error reply (such as NOGROUP) as an error.
func readResult(cmd *goredis.RawCmd) ([]streamEntries, error) {
	buf, err := cmd.Result()
	if err != nil {
		return nil, err
	}
	return parseStreams(buf)
}

// replyError is an error reply of Redis read by parseStreams.
type replyError string

func (e replyError) Error() string { return string(e) }

// errBadReply reports a reply parseStreams cannot read.
var errBadReply = errors.New("unexpected XREADGROUP reply")

// parseStreams reads an XREADGROUP reply: in RESP2 an array of [stream,
// entries] pairs, in RESP3 a map of stream to entries; each entry is [id,
// [field, value, ...]] (the fields null for an entry deleted while
// pending). RESP3 attributes are skipped. The entry IDs and fields are
// substrings of one string of the whole reply (see own). A reply that is
// an error, is cut short or has another shape is an error, never "no
// entries".
func parseStreams(buf []byte) ([]streamEntries, error) {
	p := respParser{s: string(buf)}
	l, err := p.header()
	if err != nil {
		return nil, err
	}
	n, isMap, err := p.aggregateOf(l)
	if err != nil || n <= 0 {
		return nil, err
	}
	out := make([]streamEntries, 0, n)
	var fields []string // every entry's fields, one after the other
	var spans []int     // per entry, where its fields end in fields (-1: null)
	for range n {
		if !isMap {
			if err := p.pair(); err != nil {
				return nil, err
			}
		}
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		ne, _, err := p.aggregate()
		if err != nil {
			return nil, err
		}
		// Counts are bounded by the bytes left (aggregate), so these
		// capacities are too.
		s := streamEntries{stream: name, entries: make([]entry, 0, min(max(ne, 0), p.left()/8))}
		for range ne {
			if err := p.pair(); err != nil {
				return nil, err
			}
			id, err := p.str()
			if err != nil {
				return nil, err
			}
			nf, fmap, err := p.aggregate()
			if err != nil {
				return nil, err
			}
			if fmap {
				nf *= 2
			}
			if cap(fields) == 0 && nf > 0 {
				// The entries of one producer have much the same fields.
				fields = make([]string, 0, min(ne*nf, p.left()/4)+8)
			}
			for range nf {
				f, err := p.str()
				if err != nil {
					return nil, err
				}
				fields = append(fields, f)
			}
			if nf < 0 {
				spans = append(spans, -1)
			} else {
				spans = append(spans, len(fields))
			}
			s.entries = append(s.entries, entry{id: id, shared: true})
		}
		out = append(out, s)
	}
	// fields has stopped growing: point every entry into it.
	at, lo := 0, 0
	for i := range out {
		for j := range out[i].entries {
			if hi := spans[at]; hi >= 0 {
				out[i].entries[j].fields = fields[lo:hi:hi]
				lo = hi
			}
			at++
		}
	}
	return out, nil
}

// respParser reads RESP from s, starting at i.
type respParser struct {
	s string
	i int
}

// left returns how many bytes are left to read.
func (p *respParser) left() int { return len(p.s) - p.i }

// line reads one line, without its CRLF.
func (p *respParser) line() (string, error) {
	j := strings.Index(p.s[p.i:], "\r\n")
	if j <= 0 {
		return "", errBadReply
	}
	l := p.s[p.i : p.i+j]
	p.i += j + 2
	return l, nil
}

// header reads the first line of the next value, after any RESP3
// attributes (which it skips). An error reply (simple or blob) is
// returned as a replyError.
func (p *respParser) header() (string, error) {
	for {
		l, err := p.line()
		if err != nil {
			return "", err
		}
		switch l[0] {
		case '-':
			return "", replyError(l[1:])
		case '!':
			msg, err := p.bulk(l)
			if err != nil {
				return "", err
			}
			return "", replyError(msg)
		case '|':
			n, err := p.count(l)
			if err != nil {
				return "", err
			}
			for range 2 * max(n, 0) {
				if err := p.skip(); err != nil {
					return "", err
				}
			}
			continue
		}
		return l, nil
	}
}

// count reads the length in header line l: -1 (null) or at most the bytes
// left, since every element takes at least one.
func (p *respParser) count(l string) (int, error) {
	n, err := strconv.Atoi(l[1:])
	if err != nil || n < -1 || n > p.left() {
		return 0, errBadReply
	}
	return n, nil
}

// bulk reads the body of a bulk string (or verbatim string, or blob
// error) whose header line is l; a null reads as "".
func (p *respParser) bulk(l string) (string, error) {
	n, err := strconv.Atoi(l[1:])
	switch {
	case err != nil || n < -1:
		return "", errBadReply
	case n == -1:
		return "", nil
	case n > p.left()-2 || p.s[p.i+n:p.i+n+2] != "\r\n":
		return "", errBadReply
	}
	s := p.s[p.i : p.i+n]
	p.i += n + 2
	return s, nil
}

// skip reads one value of any type and drops it.
func (p *respParser) skip() error {
	l, err := p.header()
	if err != nil {
		return err
	}
	switch l[0] {
	case '$', '=':
		_, err := p.bulk(l)
		return err
	case '*', '~', '>', '%':
		n, err := p.count(l)
		if err != nil {
			return err
		}
		if l[0] == '%' {
			n *= 2
		}
		for range n {
			if err := p.skip(); err != nil {
				return err
			}
		}
	}
	return nil // a simple type: its line was all of it
}

// pair reads the header of an array of two elements.
func (p *respParser) pair() error {
	n, _, err := p.aggregate()
	if err == nil && n != 2 {
		err = fmt.Errorf("%w: an array of %d where a pair was expected", errBadReply, n)
	}
	return err
}

// aggregate reads the header of an array (or set) or of a map, returning
// its count of elements (of pairs, for a map) and whether it is a map; a
// null reads as -1.
func (p *respParser) aggregate() (n int, isMap bool, err error) {
	l, err := p.header()
	if err != nil {
		return 0, false, err
	}
	return p.aggregateOf(l)
}

// aggregateOf is aggregate for the header line l already read.
func (p *respParser) aggregateOf(l string) (n int, isMap bool, err error) {
	switch l[0] {
	case '_':
		return -1, false, nil
	case '*', '~', '%':
		n, err := p.count(l)
		return n, l[0] == '%', err
	}
	return 0, false, fmt.Errorf("%w: %q where an array was expected", errBadReply, truncate(l, 20))
}

// str reads a string: bulk, simple or verbatim (without its format); a
// null reads as "".
func (p *respParser) str() (string, error) {
	l, err := p.header()
	if err != nil {
		return "", err
	}
	switch l[0] {
	case '+', ':':
		return l[1:], nil
	case '_':
		return "", nil
	case '$', '=':
		s, err := p.bulk(l)
		if err == nil && l[0] == '=' && len(s) >= 4 {
			s = s[4:] // verbatim: "txt:" first
		}
		return s, err
	}
	return "", fmt.Errorf("%w: %q where a string was expected", errBadReply, truncate(l, 20))
}
