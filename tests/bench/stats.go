package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// samples are the wall-clock times of one measure, in the order taken.
type samples []time.Duration

// sorted returns a sorted copy.
func (s samples) sorted() []time.Duration {
	c := append([]time.Duration(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

// median is the middle sample (the mean of the two middle ones for an
// even count); 0 without samples.
func (s samples) median() time.Duration {
	c := s.sorted()
	n := len(c)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// p90 is the 90th percentile by nearest rank: the smallest sample with at
// least 90% of the samples at or below it; 0 without samples.
func (s samples) p90() time.Duration {
	c := s.sorted()
	if len(c) == 0 {
		return 0
	}
	return c[int(math.Ceil(0.9*float64(len(c))))-1]
}

// floats returns a copy of values sorted.
func sortedFloats(v []float64) []float64 {
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c
}

// medianFloat is the median of v; NaN without values.
func medianFloat(v []float64) float64 {
	c := sortedFloats(v)
	n := len(c)
	switch {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// maxFloat is the largest of v; NaN without values.
func maxFloat(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	m := v[0]
	for _, x := range v[1:] {
		m = math.Max(m, x)
	}
	return m
}

// seconds formats a duration in seconds, with three significant digits
// and at least millisecond resolution.
func seconds(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0fs", s)
	case s >= 10:
		return fmt.Sprintf("%.1fs", s)
	case s >= 1:
		return fmt.Sprintf("%.2fs", s)
	}
	return fmt.Sprintf("%.3fs", s)
}

// mbps is bytes per second in MB/s (10^6 bytes).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(bytes) / d.Seconds() / 1e6
}
