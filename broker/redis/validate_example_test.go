package redis_test

import (
	"errors"
	"fmt"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

func ExampleValidateTopic() {
	fmt.Println(redis.ValidateTopic("orders"))
	err := redis.ValidateTopic("orders{eu}")
	fmt.Println(errors.Is(err, broker.ErrInvalidMessage))
	// Output:
	// <nil>
	// true
}
