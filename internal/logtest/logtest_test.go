package logtest_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/conveyor-jobs/conveyor/internal/logtest"
)

func TestBufferKeepsConcurrentRecords(t *testing.T) {
	var b logtest.Buffer
	text, json := b.TextLogger(nil), b.JSONLogger(nil)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			text.Info("plain")
			json.Info("structured")
			_ = b.String()
		})
	}
	wg.Wait()
	out := b.String()
	if n := strings.Count(out, "msg=plain"); n != 10 {
		t.Errorf("%d text records, want 10:\n%s", n, out)
	}
	if n := strings.Count(out, `"msg":"structured"`); n != 10 {
		t.Errorf("%d JSON records, want 10:\n%s", n, out)
	}
}
