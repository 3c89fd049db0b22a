package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	rulesType    = reflect.TypeFor[[]Rule]()
)

// durationHook decodes "5s" into a time.Duration and refuses bare numbers,
// which would silently mean nanoseconds.
func durationHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		s := strings.TrimSpace(v)
		if s == "" {
			return time.Duration(0), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("not a duration: use a number with a unit, such as \"30s\", \"1m30s\" or \"500ms\"")
		}
		return d, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		if reflect.ValueOf(v).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("a duration needs a unit, such as \"30s\" (a bare number would mean nanoseconds)")
	}
	return data, nil
}

// sliceHook splits a comma-separated string (from the environment) into a
// list: "5s, 15s,60s" or "orchestrate,ingest".
func sliceHook(from reflect.Type, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to == rulesType {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	out := []string{}
	if s == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out, nil
}

// rulesHook parses rate-limit rules written as a string, the form used in
// the environment: rules separated by ";", fields "name=value" separated by
// spaces or commas:
//
//	tenant=acme rate=5 burst=10; operation=llm rate=2 burst=4
func rulesHook(from reflect.Type, to reflect.Type, data any) (any, error) {
	if to != rulesType || from.Kind() != reflect.String {
		return data, nil
	}
	return parseRules(data.(string))
}

// parseRules parses rate-limit rules in the environment-variable form (see
// CONVEYOR_RATELIMIT_RULES in config.yaml.example) into maps ready to decode.
func parseRules(s string) ([]map[string]any, error) {
	out := []map[string]any{}
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		rule := map[string]any{}
		for field := range strings.FieldsFuncSeq(part, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			name, value, ok := strings.Cut(field, "=")
			if !ok || name == "" {
				return nil, fmt.Errorf("rule %d: %q is not name=value (write rules as \"tenant=acme rate=5 burst=10; operation=llm rate=2 burst=4\")", i+1, field)
			}
			rule[strings.ToLower(name)] = value
		}
		out = append(out, rule)
	}
	return out, nil
}

// suggest returns the known key closest to k, if it is close enough to be a
// typo.
func suggest(k string) string {
	best, bestD := "", 1<<30
	for _, known := range keyTable {
		if d := editDistance(k, known.key); d < bestD {
			best, bestD = known.key, d
		}
	}
	// Also try the last segment under the same section, e.g. "urll" → "url".
	if bestD <= max(2, len(k)/4) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var errEmpty = errors.New("must not be empty")
