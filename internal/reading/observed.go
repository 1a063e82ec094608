package reading

import "time"

// Observed is a sample once stored, as the alert rules see it: its values
// (parameter codes and the derived fields) with their QC flags. One
// without values only says that its station was heard from.
type Observed struct {
	Station string
	Time    time.Time
	// Received is the wall clock at which the message carrying the sample
	// arrived: silence is measured from it, not from sample times, so that
	// a station sending its backlog is talking, not silent.
	Received time.Time
	Values   []ObservedValue // a dozen at most: looked through, not hashed
}

// ObservedValue is one value of an Observed sample and its QC flag.
type ObservedValue struct {
	Code string // a parameter code, or a derived field
	V    float64
	Flag int
}
