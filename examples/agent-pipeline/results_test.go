//go:build conveyor_results

package main

const withResults = true
