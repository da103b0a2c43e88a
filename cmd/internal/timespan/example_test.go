package timespan_test

import (
	"fmt"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/cmd/internal/timespan"
)

func ExampleParse() {
	for _, s := range []string{"2", "1500ms", "5min 20s", "1h30m", " infinity ", ".5", "1.", "-1"} {
		d, err := timespan.Parse(s)
		switch {
		case err != nil:
			fmt.Println(err)
		case d == timespan.Infinity:
			fmt.Println("infinity")
		default:
			fmt.Println(d)
		}
	}
	// Output:
	// 2s
	// 1.5s
	// 5m20s
	// 1h30m0s
	// infinity
	// 500ms
	// invalid time span "1."
	// time span "-1" out of range
}
