import KeygateAgent

await AgentMain.run()
