// Package share divides a fetch among topics by weight, for the brokers'
// priority fetches (broker.PriorityFetcher). It is stride scheduling: every
// topic has a pass, each job goes to the topic with the lowest pass, whose
// pass then grows by its stride, Unit/weight. Over successive fetches the
// jobs given follow the weights whatever the fetch size, even one job per
// fetch. A topic that had nothing to give is brought up to the others'
// passes (Idle), so it does not bank a burst for when its jobs return.
package share

// Unit is the pass a topic of weight 1 advances by per job. It is divisible
// by every weight from 1 to 16, so their strides are exact.
const Unit = 720720

// MaxWeight bounds a weight; larger weights count as MaxWeight.
const MaxWeight = 1000

// Stride returns the pass a topic of weight w advances by per job (weights
// below 1 count as 1).
func Stride(w int) int64 {
	return Unit / int64(min(max(w, 1), MaxWeight))
}

// Pick returns the index of the lowest pass among the topics live[i] is
// set for (the first on a tie), or -1 when none is.
func Pick(pass []int64, live []bool) int {
	best := -1
	for i, p := range pass {
		if live[i] && (best < 0 || p < pass[best]) {
			best = i
		}
	}
	return best
}

// Plan gives count jobs to the live topics, one at a time to the lowest
// pass, and returns how many each gets. It advances pass as if every topic
// gave all it was planned; a caller whose topic gave n fewer takes back
// n strides.
func Plan(pass []int64, strides []int64, live []bool, count int) []int {
	out := make([]int, len(pass))
	for range count {
		i := Pick(pass, live)
		if i < 0 {
			break
		}
		out[i]++
		pass[i] += strides[i]
	}
	return out
}

// Idle brings the pass of every topic that is not live up to the lowest
// pass of the live ones (when any), so that a topic coming back gets its
// share from then on and no more.
func Idle(pass []int64, live []bool) {
	i := Pick(pass, live)
	if i < 0 {
		return
	}
	for j := range pass {
		if !live[j] && pass[j] < pass[i] {
			pass[j] = pass[i]
		}
	}
}

// Normalize subtracts the lowest pass from every pass, keeping them small.
func Normalize(pass []int64) {
	if len(pass) == 0 {
		return
	}
	low := pass[0]
	for _, p := range pass {
		low = min(low, p)
	}
	for i := range pass {
		pass[i] -= low
	}
}
