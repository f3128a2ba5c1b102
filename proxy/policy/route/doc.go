// Package route is the routing layer: it matches a request against a Route
// policy's ordered rules (path prefix or regex, method, headers exact or
// regex) and picks a backend version by weight. In enforce mode the chosen
// version restricts the endpoints the balancer may pick; in observe mode the
// choice is only recorded (decision "route:VERSION").
package route
