//go:build race

package receiver

// raceEnabled: the race detector slows everything down, timing tests skip.
const raceEnabled = true
