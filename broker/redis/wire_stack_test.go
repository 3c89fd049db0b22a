package redis

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/conveyor-jobs/conveyor/job"
)

// TestStackField checks the stack field of the wire format: a failure's
// stack is written to it, read back into Failure.Stack, and cut to MaxStack
// bytes at a line end.
func TestStackField(t *testing.T) {
	long := strings.Repeat("main.f(...)\n\t/src/f.go:1 +0x1\n", 1000) // ≈ 28 KiB
	tests := []struct {
		name, stack string
		want        func(got string) bool
	}{
		{"none", "", func(got string) bool { return got == "" }},
		{"short", "goroutine 1 [running]:\nmain.f()", func(got string) bool { return got == "goroutine 1 [running]:\nmain.f()" }},
		{"long line of multibyte characters", strings.Repeat("é", MaxStack), func(got string) bool {
			return len(got) <= MaxStack && utf8.ValidString(got) && strings.HasSuffix(got, stackTruncated)
		}},
		{"long", long, func(got string) bool {
			return len(got) <= MaxStack && strings.HasSuffix(got, stackTruncated) &&
				strings.HasPrefix(long, strings.TrimSuffix(got, stackTruncated)+"\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &job.Job{ID: "1", Topic: "t", Payload: []byte("p"), Attempt: 2, EnqueuedAt: time.UnixMilli(1000)}
			f := &job.Failure{Error: "boom", Reason: job.ReasonPanic, Origin: "t", At: time.UnixMilli(2000), Stack: tt.stack}
			fields := encodeFields(j, 2, f)
			values := map[string]any{}
			for i := 0; i+1 < len(fields); i += 2 {
				values[fields[i]] = fields[i+1]
			}
			if _, ok := values[fieldStack]; ok != (tt.stack != "") {
				t.Errorf("stack field present = %v, want %v", ok, tt.stack != "")
			}
			dec := decodeEntry("t", "1-0", "1-0", values)
			if dec.job.Failure == nil || !tt.want(dec.job.Failure.Stack) {
				t.Fatalf("decoded failure %+v", dec.job.Failure)
			}
			if dec.job.Failure.Error != "boom" {
				t.Errorf("error %q", dec.job.Failure.Error)
			}
		})
	}
}
