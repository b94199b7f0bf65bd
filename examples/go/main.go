// `pulumi up` runs this program (program.go); inline_test.go runs the same function inline.
package main

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

func main() {
	pulumi.Run(program)
}
