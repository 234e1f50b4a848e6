import KeygateCLI

await KeygateMain.run()
