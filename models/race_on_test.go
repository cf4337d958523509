//go:build race

package models_test

// raceOn: the race detector instruments the pure-Go SQLite driver too,
// which makes a statement of thousands of rows take tens of seconds.
const raceOn = true
