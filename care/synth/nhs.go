package synth

import (
	"math/rand/v2"
	"strconv"

	"carefhir/profiles"
)

// NHS numbers are ten digits, the last a Modulus 11 check digit. NHS England
// keeps 999 000 0000 to 999 999 9999 for testing, so numbers drawn from it
// never name a real patient.
const (
	nhsTestBase  = 999_000_000 // first nine digits of the lowest test number
	nhsTestCount = 1_000_000   // nine-digit stems in the test range
)

// nhsSequence hands out distinct valid test NHS numbers in an order set by
// the seed: the stems of the test range are visited in the order of the
// permutation k → (a·k + b) mod 10⁶, with a coprime to 10⁶, and stems
// that give no valid NHS number (no check digit, or 9999999999) are passed
// over.
type nhsSequence struct {
	a, b, k uint64
}

func newNHSSequence(seed uint64) *nhsSequence {
	r := rand.New(rand.NewPCG(seed, streamNHS))
	a := r.Uint64N(nhsTestCount)
	for a%2 == 0 || a%5 == 0 {
		a = r.Uint64N(nhsTestCount)
	}
	return &nhsSequence{a: a, b: r.Uint64N(nhsTestCount)}
}

// next returns the next number. Once the range is used up (after
// MaxPatients and more) it starts again from the first.
func (s *nhsSequence) next() string {
	for {
		stem := strconv.FormatUint(nhsTestBase+(s.a*s.k+s.b)%nhsTestCount, 10)
		s.k = (s.k + 1) % nhsTestCount
		if check, ok := profiles.NHSCheckDigit(stem); ok && profiles.ValidNHSNumber(stem+string(check)) {
			return stem + string(check)
		}
	}
}
