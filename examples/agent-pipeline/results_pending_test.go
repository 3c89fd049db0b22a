//go:build !conveyor_results

package main

const withResults = false
