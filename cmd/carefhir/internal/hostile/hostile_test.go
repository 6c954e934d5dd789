package hostile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"carefhir/server"
	"carefhir/store/enginetest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// memoryCeiling is the most memory the process (server, clients and, for
// MongoDB, the embedded FerretDB) may use while hostile requests run: a
// request of the 2 million wrong items once took 4 GiB alone.
const (
	rssCeiling  = 1 << 30
	heapCeiling = 512 << 20
)

// TestHostileBesideNormal runs the hostile requests beside normal traffic
// on each engine and checks what does not depend on timing: nothing
// crashes, every hostile request gets its answer, every normal request
// succeeds, and memory stays under the ceiling. The throughput and latency
// figures are measured by `carefhir bench hostile` (docs/benchmarks.md).
func TestHostileBesideNormal(t *testing.T) {
	engines := enginetest.Engines()
	for _, e := range engines {
		t.Run(e.Name, func(t *testing.T) {
			st := e.Open(t)
			srv := httptest.NewServer(server.New(server.Config{Store: st}))
			t.Cleanup(func() {
				srv.Close()
				st.Close()
			})
			res, err := Run(context.Background(), Config{
				BaseURL:  srv.URL + "/fhir",
				Client:   &http.Client{Timeout: time.Minute},
				Normal:   2,
				Hostile:  2,
				Duration: time.Second,
				Patients: 20,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Alone.Failures > 0 || res.Loaded.Failures > 0 || res.Loaded.Requests == 0 {
				t.Errorf("normal requests: %+v alone, %+v beside hostile ones; want all to succeed", res.Alone, res.Loaded)
			}
			if len(res.Unexpected) > 0 {
				t.Errorf("hostile requests answered unexpectedly: %v", res.Unexpected)
			}
			if len(res.Hostile) < len(requests()) {
				t.Errorf("%d kinds of hostile request answered, want all %d", len(res.Hostile), len(requests()))
			}
			if res.PeakRSS > rssCeiling || res.PeakHeap > heapCeiling {
				t.Errorf("peak RSS %d MiB, heap %d MiB; ceilings %d MiB, %d MiB", res.PeakRSS>>20, res.PeakHeap>>20, rssCeiling>>20, heapCeiling>>20)
			}
			var b testWriter
			res.WriteTo(&b)
			t.Log("\n" + string(b))
		})
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
