package redistest_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
)

func TestStartCluster(t *testing.T) {
	requireBinary(t, "redis-server")
	c := redistest.StartCluster(t, 3)
	if len(c.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 nodes", c.Addrs)
	}
	ctx := t.Context()
	rdb := c.Client(t)
	for _, addr := range c.Addrs {
		node := goredis.NewClient(&goredis.Options{Addr: addr})
		info, err := node.ClusterInfo(ctx).Result()
		node.Close()
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_assigned:16384") {
			t.Fatalf("CLUSTER INFO on %s: %v\n%s", addr, err, info)
		}
	}
	nodes := make([]*goredis.Client, len(c.Addrs))
	for i, addr := range c.Addrs {
		nodes[i] = goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
		defer nodes[i].Close()
	}
	// Keys in many slots are written through the cluster client; each is owned by exactly
	// one node (the others answer MOVED), and together they cover every node.
	owners := map[string]bool{}
	for i := range 30 {
		key := c.Key(fmt.Sprintf("{t%d}", i), "stream")
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		var owner []string
		for j, node := range nodes {
			got, err := node.Get(ctx, key).Int()
			switch {
			case err == nil && got == i:
				owner = append(owner, c.Addrs[j])
			case err != nil && strings.HasPrefix(err.Error(), "MOVED"):
			default:
				t.Fatalf("GET %s on %s = %d, %v", key, c.Addrs[j], got, err)
			}
		}
		if len(owner) != 1 {
			t.Fatalf("key %s owned by %v, want exactly one node", key, owner)
		}
		owners[owner[0]] = true
	}
	if len(owners) != 3 {
		t.Fatalf("30 keys landed on %d nodes (%v), want all 3", len(owners), owners)
	}
}

func TestStartTLS(t *testing.T) {
	requireBinary(t, "redis-server")
	s := redistest.StartTLS(t)
	ctx := t.Context()
	if !strings.HasPrefix(s.TLSURL, "rediss://127.0.0.1:") || !strings.HasPrefix(s.PlainURL, "redis://127.0.0.1:") {
		t.Fatalf("TLSURL %q PlainURL %q", s.TLSURL, s.PlainURL)
	}
	tests := []struct {
		name    string
		opts    func() *goredis.Options
		wantErr bool
	}{
		{"client certificate", func() *goredis.Options {
			return &goredis.Options{Addr: s.TLSAddr, TLSConfig: s.TLSConfig()}
		}, false},
		{"CA only, from the URL", func() *goredis.Options {
			o, err := goredis.ParseURL(s.TLSURL)
			if err != nil {
				t.Fatal(err)
			}
			o.TLSConfig.RootCAs = s.CAPool()
			return o
		}, false},
		{"plain port", func() *goredis.Options {
			o, err := goredis.ParseURL(s.PlainURL)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}, false},
		{"without the CA", func() *goredis.Options {
			o, err := goredis.ParseURL(s.TLSURL)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}, true},
		{"plain text on the TLS port", func() *goredis.Options {
			return &goredis.Options{Addr: s.TLSAddr}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts()
			o.MaxRetries = -1
			o.DialTimeout, o.ReadTimeout = 2*time.Second, 2*time.Second
			rdb := goredis.NewClient(o)
			defer rdb.Close()
			err := rdb.Set(ctx, s.Namespace+":k", "v", 0).Err()
			if tc.wantErr {
				if err == nil {
					t.Fatal("command succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	// The failure without the CA is a certificate verification error.
	o, _ := goredis.ParseURL(s.TLSURL)
	o.MaxRetries = -1
	rdb := goredis.NewClient(o)
	defer rdb.Close()
	var unknown x509.UnknownAuthorityError
	if err := rdb.Ping(ctx).Err(); !errors.As(err, &unknown) {
		t.Fatalf("PING without the CA: %v, want an unknown-authority error", err)
	}
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("Client: %v", err)
	}
}
