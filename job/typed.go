package job

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
)

// Codec turns payload bytes into values and back.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec], using encoding/json.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// DecodeError reports a payload that a typed handler could not decode. It is
// always wrapped in a [PermanentError]: retrying cannot fix the bytes.
type DecodeError struct {
	Topic string
	Type  string
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("conveyor: cannot decode payload of topic %q into %s: %v", e.Topic, e.Type, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Typed adapts a function taking a decoded payload of type T to a [Handler].
// The payload is decoded as JSON; see [TypedWith] for another codec. A payload
// that cannot be decoded fails permanently with a [*DecodeError] (reason
// [ReasonUndecodable]): the job is dead-lettered at once and never loops.
func Typed[T any](fn func(ctx context.Context, v T, j *Job) error) Handler {
	return TypedWith(JSON{}, fn)
}

// TypedWith is [Typed] with codec c.
func TypedWith[T any](c Codec, fn func(ctx context.Context, v T, j *Job) error) Handler {
	if fn == nil {
		return nil
	}
	return &typed[T]{codec: c, fn: fn, name: fmt.Sprintf("job.Typed[%s]", reflect.TypeFor[T]())}
}

type typed[T any] struct {
	codec Codec
	fn    func(ctx context.Context, v T, j *Job) error
	name  string
}

func (t *typed[T]) ProcessJob(ctx context.Context, j *Job) error {
	var v T
	if err := t.codec.Unmarshal(j.Payload, &v); err != nil {
		return &PermanentError{
			Err:     &DecodeError{Topic: j.Topic, Type: reflect.TypeFor[T]().String(), Err: err},
			Reason:  ReasonUndecodable,
			Handler: t.name,
		}
	}
	return t.fn(ctx, v, j)
}

func (t *typed[T]) HandlerName() string { return t.name }
