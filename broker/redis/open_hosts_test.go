package redis

import (
	"slices"
	"testing"
)

// TestParseURLHosts checks the addresses a URL's host list gives: ports
// default to 6379, IPv6 literals keep their brackets, and an '@' in the
// query does not move the host part.
func TestParseURLHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want []string
	}{
		{"redis://h1:7000,[::1]:7001,[::2],h4?cluster=true", []string{"h1:7000", "[::1]:7001", "[::2]:6379", "h4:6379"}},
		{"redis://u:p%40ss@s1,[fe80::1%25eth0]:26380/2?master_name=m", []string{"s1:6379", "[fe80::1%eth0]:26380"}},
		{"redis://h1,h2?client_name=a@b", []string{"h1:6379", "h2:6379"}},
		{"redis://[::1]:7000?cluster=true", []string{"[::1]:7000"}},
		{"redis://[::1]", []string{"[::1]:6379"}},
		{"redis://", []string{"localhost:6379"}}, // one server: go-redis's default
	}
	for _, tt := range tests {
		p, err := parseURL(tt.url)
		if err != nil {
			t.Errorf("parseURL(%s): %v", tt.url, err)
			continue
		}
		if !slices.Equal(p.addrs, tt.want) {
			t.Errorf("parseURL(%s) addresses = %q, want %q", tt.url, p.addrs, tt.want)
		}
	}
}
