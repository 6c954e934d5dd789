//go:build !unix

package floorbench

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
