// Command meshscope is the Meshscope server and its command-line client.
//
//	meshscope server   run the collector, stores, graph builder, APIs and UI
//	meshscope demo     run the server with a demo shop of meshed services and load
//	meshscope version  print the version
//
// and client commands that talk to a running server (stat, top, traces,
// graph, check) plus migrate for the ClickHouse trace store. main only parses
// flags and wires the parts; each part lives in its own package.
package main
