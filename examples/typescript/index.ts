// `pulumi up` runs this file: the program's return value becomes the stack outputs.
import { program } from "./program";

export = program();
