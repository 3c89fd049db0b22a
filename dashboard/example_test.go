package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/dashboard"
)

// Mount the dashboard in an application's own mux under a prefix, read-only.
func Example_mount() {
	b := memory.New(nil) // or redis.Open(os.Getenv("REDIS_URL"), opts)
	defer b.Close()
	_, _ = b.Publish(context.Background(), broker.Message{Topic: "orchestrate", Payload: []byte(`{"prompt":"hi"}`)})

	mux := http.NewServeMux()
	mux.Handle("/ops/queues/", http.StripPrefix("/ops/queues", dashboard.New(b, &dashboard.Options{ReadOnly: true})))

	// The overview is at /ops/queues/; the same data as JSON at
	// /ops/queues/api/overview.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ops/queues/api/overview", nil))
	var ov struct {
		Topics []struct {
			Topic  string `json:"topic"`
			Length int64  `json:"length"`
		} `json:"topics"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &ov)
	fmt.Println(rec.Code, ov.Topics[0].Topic, ov.Topics[0].Length)
	// Output: 200 orchestrate 1
}

// Protect the dashboard with basic auth; every page, fragment and asset asks
// for it.
func ExampleNew_basicAuth() {
	b := memory.New(nil)
	defer b.Close()
	d := dashboard.New(b, &dashboard.Options{Auth: dashboard.Auth{User: "ops", Password: "s3cret"}})

	for _, pass := range []string{"", "s3cret"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if pass != "" {
			req.SetBasicAuth("ops", pass)
		}
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 401
	// 200
}
