package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"github.com/subosito/gotenv"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// EnvConfigFile names the environment variable that gives the config file
// path when Options.File is empty.
const EnvConfigFile = "CONVEYOR_CONFIG"

// ErrInvalid is matched (with errors.Is) by every error [Load] returns: a
// missing or unreadable file, an unknown key, a value that does not decode or
// validate.
var ErrInvalid = errors.New("conveyor: invalid configuration")

// Options says where [Load] looks. The zero value reads CONVEYOR_CONFIG (if
// set), ./.env and the process environment.
type Options struct {
	// File is the config file (YAML, or JSON/TOML by extension). Empty means
	// the file named by $CONVEYOR_CONFIG, and no file when that is unset;
	// a file that is named but missing is an error.
	File string
	// Dir is the directory holding .env; empty means the working directory.
	Dir string
	// NoDotEnv skips the .env file.
	NoDotEnv bool
	// LookupEnv reads environment variables; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// SourceKind says which layer a value came from.
type SourceKind int

// The layers, lowest precedence first.
const (
	FromDefault SourceKind = iota
	FromFile
	FromDotEnv
	FromEnv
)

// Source is where one value came from: its layer and the file path (file,
// .env) or the variable name (.env, env).
type Source struct {
	Kind SourceKind
	// File is the config file or .env path.
	File string
	// Var is the environment variable, for FromEnv and FromDotEnv.
	Var string
}

// String describes s for humans: "default", "file config.yaml",
// ".env REDIS_URL", "env REDIS_URL".
func (s Source) String() string {
	switch s.Kind {
	case FromFile:
		return "file " + s.File
	case FromDotEnv:
		return s.File + " " + s.Var
	case FromEnv:
		return "env " + s.Var
	default:
		return "default"
	}
}

// Error is a configuration error about one key. It names the key, the
// (redacted) value and where the value came from.
type Error struct {
	Key    string
	Value  string
	Source Source
	Err    error
}

// Error returns "config: <key> = <value> (from <source>): <reason>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.Key)
	if e.Value != "" || e.Source.Kind != FromDefault {
		fmt.Fprintf(&b, " = %q", e.Value)
	}
	fmt.Fprintf(&b, " (from %s): %v", e.Source, e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// UnknownKeyError reports a key in a config file that conveyor does not know,
// usually a typo.
type UnknownKeyError struct {
	Key  string
	File string
	// Suggestion is the closest known key, or "".
	Suggestion string
}

// Error names the key, the file and the closest known key.
func (e *UnknownKeyError) Error() string {
	msg := fmt.Sprintf("config: unknown key %q in %s", e.Key, e.File)
	if e.Suggestion != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", e.Suggestion)
	}
	return msg
}

// Is matches ErrInvalid.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrInvalid }

type fileError struct {
	file string
	err  error
}

func (e *fileError) Error() string                   { return fmt.Sprintf("config: %s: %v", e.file, e.err) }
func (e *fileError) Unwrap() error                   { return e.err }
func (e *fileError) Is(target error) bool            { return target == ErrInvalid }
func newFileError(file string, err error) error      { return &fileError{file: file, err: err} }
func (o *Options) lookup(name string) (string, bool) { return o.lookupEnv()(name) }

func (o *Options) lookupEnv() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

// Load builds the effective configuration: defaults, then the config file,
// then .env, then the environment, each overriding the one before. A variable
// set in the environment wins over the same variable in .env.
//
// Errors match [ErrInvalid]; they name the key, the value (passwords
// redacted) and its source. Several errors are joined.
func Load(opts *Options) (*Config, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	file := o.File
	if file == "" {
		file, _ = o.lookup(EnvConfigFile)
	}
	var fileV *viper.Viper
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, newFileError(file, err)
		}
		fileV, err = parseFile(file, data)
		if err != nil {
			return nil, err
		}
	}
	var dotenv map[string]string
	dotenvPath := ".env"
	if !o.NoDotEnv {
		dotenvPath = filepath.Join(o.Dir, ".env")
		data, err := os.ReadFile(dotenvPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, newFileError(dotenvPath, err)
		default:
			dotenv, err = gotenv.StrictParse(bytes.NewReader(data))
			if err != nil {
				return nil, newFileError(dotenvPath, err)
			}
		}
	}
	return build(fileV, file, dotenv, dotenvPath, o.lookupEnv())
}

// parseFile reads a config file's bytes and rejects unknown keys.
func parseFile(file string, data []byte) (*viper.Viper, error) {
	v := viper.New()
	typ := strings.TrimPrefix(filepath.Ext(file), ".")
	if !slices.Contains(viper.SupportedExts, typ) || typ == "env" || typ == "dotenv" {
		typ = "yaml"
	}
	v.SetConfigType(typ)
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		// Parse errors quote the offending text, which may hold a URL.
		return nil, newFileError(file, errors.New(redact.URLsIn(err.Error())))
	}
	var errs []error
	for _, k := range v.AllKeys() {
		if lookupKey(k) != nil {
			continue
		}
		if isSection(k) {
			errs = append(errs, &Error{Key: k, Value: displayValue(k, v.Get(k)),
				Source: Source{Kind: FromFile, File: file},
				Err:    fmt.Errorf("is a section: expected keys under it, such as %s", firstKeyUnder(k))})
			continue
		}
		errs = append(errs, &UnknownKeyError{Key: redact.URLsIn(k), File: file, Suggestion: suggest(k)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
}

func firstKeyUnder(section string) string {
	for _, k := range keyTable {
		if strings.HasPrefix(k.key, section+".") {
			return k.key
		}
	}
	return ""
}

// build layers the sources over the defaults, decodes and validates.
func build(fileV *viper.Viper, file string, dotenv map[string]string, dotenvPath string, env func(string) (string, bool)) (*Config, error) {
	cfg := Default()
	cfg.sources = make(map[string]Source, len(keyTable))
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	for _, k := range keyTable {
		var raw any
		var src Source
		if s, ok := env(k.env); ok {
			raw, src = s, Source{Kind: FromEnv, Var: k.env}
		} else if s, ok := dotenv[k.env]; ok {
			raw, src = s, Source{Kind: FromDotEnv, File: dotenvPath, Var: k.env}
		} else if fileV != nil && fileV.InConfig(k.key) {
			raw, src = fileV.Get(k.key), Source{Kind: FromFile, File: file}
		} else {
			cfg.sources[k.key] = Source{Kind: FromDefault}
			continue
		}
		cfg.sources[k.key] = src
		field := root.FieldByIndex(k.index)
		if err := decodeValue(raw, field); err != nil {
			errs = append(errs, &Error{Key: k.key, Value: displayValue(k.key, raw), Source: src, Err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Redis.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Redis.Consumer = fmt.Sprintf("%s-%d", cmp.Or(host, "conveyor"), os.Getpid())
	}
	return cfg, nil
}

// decodeValue decodes raw (a string from the environment, or what YAML gave)
// into field, which it replaces.
func decodeValue(raw any, field reflect.Value) error {
	out := reflect.New(field.Type())
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			rulesHook,
			sliceHook,
			durationHook,
		),
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		Result:           out.Interface(),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(raw); err != nil {
		return cleanDecodeError(field.Type(), err)
	}
	field.Set(out.Elem())
	return nil
}

// cleanDecodeError rewrites mapstructure's error for a value of type t into
// a sentence: "must be a whole number", "item 2: not a duration: …".
func cleanDecodeError(t reflect.Type, err error) error {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return errors.New("must be a whole number")
	case reflect.Int64:
		if t != durationType {
			return errors.New("must be a whole number")
		}
	case reflect.Float32, reflect.Float64:
		return errors.New("must be a number")
	case reflect.Bool:
		return errors.New("must be true or false")
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		msg = msg[i+2:]
	}
	msg = strings.TrimSpace(strings.TrimPrefix(msg, "decoding failed due to the following error(s):"))
	if m := decodePrefix.FindStringSubmatch(msg); m != nil {
		rest := msg[len(m[0]):]
		switch {
		case m[1] == "":
			msg = rest
		case m[2] != "":
			n, _ := strconv.Atoi(m[2])
			msg = fmt.Sprintf("item %d: %s", n+1, rest)
		default:
			msg = fmt.Sprintf("%s: %s", m[1], rest)
		}
	}
	return errors.New(msg)
}

// decodePrefix matches the "'name' " or "'[3]' " mapstructure puts first.
var decodePrefix = regexp.MustCompile(`^'(\[(\d+)\](?:\.)?[^']*|[^']*)' `)

// displayValue renders raw for an error message or a listing, redacting
// the password of any URL in it (a Redis URL put under the wrong key, say).
func displayValue(key string, raw any) string {
	var s string
	switch v := raw.(type) {
	case string:
		s = v
	case nil:
		s = ""
	default:
		s = fmt.Sprint(v)
	}
	if key == "redis.url" {
		return redact.URL(s)
	}
	return redact.URLsIn(s)
}
