// Command etcd runs etcd's server from its Go module (etcdmain), for a
// side-by-side benchmark on a machine that cannot pull etcd's image.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
