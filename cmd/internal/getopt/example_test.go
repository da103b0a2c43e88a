package getopt_test

import (
	"fmt"

	"github.com/uring-socket-proxyd/uring-socket-proxyd/cmd/internal/getopt"
)

// A program acts on the events in order and stops at the first that ends
// it, as systemd-socket-proxyd's parse_argv() does.
func Example() {
	opts := []getopt.Option{
		{Long: "connections-max", Short: 'c', Arg: getopt.RequiredArgument, Original: true},
		{Long: "exit-idle-time", Arg: getopt.RequiredArgument, Original: true},
		{Long: "help", Short: 'h', Original: true},
		{Long: "version", Original: true},
		{Long: "connect-timeout", Arg: getopt.RequiredArgument}, // new: --conn still means --connections-max
	}
	for _, args := range [][]string{
		{"localhost:80", "--conn=5", "--connect-t", "2s"},
		{"-c", "5", "--exit=1min", "--help", "--bogus", "x"},
		{"--bogus", "--help", "x"},
	} {
		events, operands := getopt.Parse("uring-socket-proxyd", args, opts)
	events:
		for _, e := range events {
			switch {
			case e.Err != nil:
				fmt.Println(e.Err)
				break events
			case e.Option.Long == "help":
				fmt.Println("help")
				break events
			default:
				fmt.Printf("--%s=%s\n", e.Option.Long, e.Value)
			}
		}
		fmt.Println("operands:", operands)
	}
	// Output:
	// --connections-max=5
	// --connect-timeout=2s
	// operands: [localhost:80]
	// --connections-max=5
	// --exit-idle-time=1min
	// help
	// operands: [x]
	// uring-socket-proxyd: unrecognized option '--bogus'
	// operands: [x]
}
