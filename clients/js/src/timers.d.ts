// The two timer functions every runtime the client targets has (browsers, Node, React Native).
// The client's own type check runs with the plain ES library (no DOM, no Node types), so that
// nothing else of either slips in; these are declared here instead.
declare function setTimeout(callback: () => void, ms?: number): unknown;
declare function clearTimeout(handle: unknown): void;
