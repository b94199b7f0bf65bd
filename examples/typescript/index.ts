// `pulumi up` runs this file: what the program resolves to becomes the stack outputs.
import { program } from "./program";

export = program();
