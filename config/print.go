package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Entry is one effective setting, for display: the value is written the way
// its environment variable would set it, with passwords redacted.
type Entry struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Env    string `json:"env"`
	Source string `json:"source"`
}

// Entries returns every setting of c in key order, passwords redacted.
func (c *Config) Entries() []Entry {
	out := make([]Entry, 0, len(keyTable))
	for _, k := range keyTable {
		out = append(out, Entry{Key: k.key, Value: c.valueOf(k.key), Env: k.env, Source: c.Source(k.key).String()})
	}
	return out
}

// valueOf formats the value of key as its environment variable would set it,
// redacting passwords.
func (c *Config) valueOf(key string) string {
	k := lookupKey(key)
	if k == nil {
		return ""
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(k.index).Interface()
	return displayValue(key, formatValue(v))
}

func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case time.Duration:
		return v.String()
	case []time.Duration:
		parts := make([]string, len(v))
		for i, d := range v {
			parts[i] = d.String()
		}
		return strings.Join(parts, ",")
	case []string:
		return strings.Join(v, ",")
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []Rule:
		parts := make([]string, len(v))
		for i, r := range v {
			var f []string
			if r.Tenant != "" {
				f = append(f, "tenant="+r.Tenant)
			}
			if r.Operation != "" {
				f = append(f, "operation="+r.Operation)
			}
			f = append(f, "rate="+strconv.FormatFloat(r.Rate, 'g', -1, 64), "burst="+strconv.Itoa(r.Burst))
			parts[i] = strings.Join(f, " ")
		}
		return strings.Join(parts, "; ")
	default:
		return fmt.Sprint(v)
	}
}
