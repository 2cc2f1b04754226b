// Command parley is a peer-to-peer, end-to-end encrypted messenger. One
// binary is both the node (`parley up`) and the client that drives it
// through the node's local API (`parley send`, `parley chat`, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var u *usageError
		if errors.As(err, &u) {
			fmt.Fprintf(os.Stderr, "parley: %v\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "parley: %v\n", err)
		os.Exit(1)
	}
}
