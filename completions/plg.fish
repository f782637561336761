# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_plg_global_optspecs
    string join \n color= h/help V/version
end

function __fish_plg_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_plg_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_plg_using_subcommand
    set -l cmd (__fish_plg_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c plg -n "__fish_plg_needs_command" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_needs_command" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_needs_command" -f -a "record" -d 'Run commands in private network namespaces and record every TCP conversation between them'
complete -c plg -n "__fish_plg_needs_command" -f -a "replay" -d 'Feed a recording back to live programs, and play the peers that are not there'
complete -c plg -n "__fish_plg_needs_command" -f -a "inspect" -d 'Show what a capture holds'
complete -c plg -n "__fish_plg_needs_command" -f -a "export" -d 'Convert a capture to pcap, plain pcapng or stream files'
complete -c plg -n "__fish_plg_needs_command" -f -a "diff" -d 'Compare two captures and report behavioural drift'
complete -c plg -n "__fish_plg_needs_command" -f -a "wireshark" -d 'Print or install the Wireshark dissector for plg captures'
complete -c plg -n "__fish_plg_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c plg -n "__fish_plg_using_subcommand record" -s f -l file -d 'Capture file to write (pcapng): a new or regular file. An existing one is replaced once every process started, so a failed start leaves it as it was; a symlink is followed' -r -F
complete -c plg -n "__fish_plg_using_subcommand record" -s s -l subnet -d 'Subnet of the processes (p0 gets its second address)' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l subnet6 -d 'IPv6 subnet of the processes (p0 gets its ::2 address, ::1 is the gateway)' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l names -d 'Names of the processes, in order, comma separated (default: p0, p1, ...)' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l ready -d 'Start later commands only once process NAME listens on PORT (or on any port): a TCP listener or a bound UDP socket, IPv4 or IPv6, on an address the other processes reach (a wildcard or its own, not 127.0.0.1 or ::1), seen in the kernel\'s socket table without sending a packet. Repeatable' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l ready-timeout -d 'Give up waiting for --ready after this many seconds' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l main -d 'The session ends when this process exits (repeatable; default: the last command)' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l grace -d 'Seconds between SIGTERM and SIGKILL for the processes still running at the end' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l mtu -d 'MTU of the virtual links (the MSS applications see follows from it). Below 1280 the session is IPv4 only (IPv6 needs 1280)' -r
complete -c plg -n "__fish_plg_using_subcommand record" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand record" -l no-ipv6 -d 'IPv4 only: no IPv6 address, IPv6 off in every namespace (IPv6 packets are dropped)'
complete -c plg -n "__fish_plg_using_subcommand record" -l no-prefix -d 'Do not prefix each output line with the process name'
complete -c plg -n "__fish_plg_using_subcommand record" -s q -l quiet -d 'No status line and no summary'
complete -c plg -n "__fish_plg_using_subcommand record" -l no-offload -d 'Disable segmentation/checksum offload through the TUN devices (slower; for debugging)'
complete -c plg -n "__fish_plg_using_subcommand record" -l userns -d 'Run each command in a user namespace of its own, as root inside and, on the host, as nobody (uid 65534; when plg runs as root) or as the invoking user (rootless). The commands then cannot enter the host\'s or each other\'s namespaces, reconfigure their network or act as root on the host\'s files. Low ports and ping still work'
complete -c plg -n "__fish_plg_using_subcommand record" -l prefer-ipv6 -d 'Names resolve IPv6 first (AAAA before A), as glibc\'s own table orders a ULA subnet. By default plg gives every process RFC 6724\'s table, which ranks the default ULA subnet below IPv4, so a client of an IPv4-only server does not first hit a refused IPv6 attempt (recorded as a refused connection). Ignored with --no-ipv6'
complete -c plg -n "__fish_plg_using_subcommand record" -l allow-external -d 'Relay connections to the gateway address (subnet+1) to the host\'s loopback, recorded like any other. Without it, processes can reach only each other'
complete -c plg -n "__fish_plg_using_subcommand record" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand record" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand replay" -s f -l file -d 'The capture to replay' -r -F
complete -c plg -n "__fish_plg_using_subcommand replay" -s o -l output -d 'Write a capture of the replay (what live processes sent, what plg played)' -r -F
complete -c plg -n "__fish_plg_using_subcommand replay" -l step-timeout -d 'Seconds a step may wait for the live side before it is forced and reported' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l speed -d 'With --timing: play this many times faster than recorded' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l unmatched -d 'What to do with a live connection that has no recorded counterpart' -r -f -a "refuse\t'Refuse it (RST) and report it'
pass\t'Let it through to a live destination, relayed as in recording'"
complete -c plg -n "__fish_plg_using_subcommand replay" -l ignore -d 'Bytes matching REGEX compare as equal in the verdict (repeatable; the syntax of `plg diff --ignore`). Matched on bytes: `.` and `[^\\r]` match any byte' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l rules -d 'Read noise rules from FILE (repeatable; the format of `plg diff --rules`, learned rules included: ignore, ignore-conn, ignore-port)' -r -F
complete -c plg -n "__fish_plg_using_subcommand replay" -l report -d 'Also write the replay\'s verdict as JSON to FILE (format in docs/JSON.md), for CI; `-` is standard output. Replaces FILE if it is a regular file' -r -F
complete -c plg -n "__fish_plg_using_subcommand replay" -l ready -d 'Start later commands only once process NAME listens on PORT (or on any port): a TCP listener or a bound UDP socket, IPv4 or IPv6, on an address the other processes reach (a wildcard or its own, not 127.0.0.1 or ::1), seen in the kernel\'s socket table without sending a packet. Repeatable' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l ready-timeout -d 'Give up waiting for --ready after this many seconds' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l main -d 'The session ends when this process exits (repeatable; default: the last command)' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l grace -d 'Seconds between SIGTERM and SIGKILL for the processes still running at the end' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l mtu -d 'MTU of the virtual links (the MSS applications see follows from it). Below 1280 the session is IPv4 only (IPv6 needs 1280)' -r
complete -c plg -n "__fish_plg_using_subcommand replay" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand replay" -l timing -d 'Also honour the recorded gaps between events'
complete -c plg -n "__fish_plg_using_subcommand replay" -l strict -d 'Exit with plg\'s verdict instead of the main command\'s status: 0 behaved as recorded (modulo --ignore/--rules), 1 diverged, unused, unmatched or not judged, 2 plg error'
complete -c plg -n "__fish_plg_using_subcommand replay" -l no-prefix -d 'Do not prefix each output line with the process name'
complete -c plg -n "__fish_plg_using_subcommand replay" -s q -l quiet -d 'No status line and no summary'
complete -c plg -n "__fish_plg_using_subcommand replay" -l no-offload -d 'Disable segmentation/checksum offload through the TUN devices (slower; for debugging)'
complete -c plg -n "__fish_plg_using_subcommand replay" -l userns -d 'Run each command in a user namespace of its own, as root inside and, on the host, as nobody (uid 65534; when plg runs as root) or as the invoking user (rootless). The commands then cannot enter the host\'s or each other\'s namespaces, reconfigure their network or act as root on the host\'s files. Low ports and ping still work'
complete -c plg -n "__fish_plg_using_subcommand replay" -l prefer-ipv6 -d 'Names resolve IPv6 first (AAAA before A), as glibc\'s own table orders a ULA subnet. By default plg gives every process RFC 6724\'s table, which ranks the default ULA subnet below IPv4, so a client of an IPv4-only server does not first hit a refused IPv6 attempt (recorded as a refused connection). Ignored with --no-ipv6'
complete -c plg -n "__fish_plg_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand replay" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l conn -d 'Show the conversation of connection ID in time order, with direction markers; `sN:ID` is connection ID of section N (captures concatenated)' -r
complete -c plg -n "__fish_plg_using_subcommand inspect" -l section -d 'Only section N (1 is the first) of a file of several sections: its summary, its connections, or its connection --conn ID' -r
complete -c plg -n "__fish_plg_using_subcommand inspect" -l direction -d 'With --raw: which side\'s bytes' -r -f -a "client\t'The bytes the client sent'
server\t'The bytes the server sent'"
complete -c plg -n "__fish_plg_using_subcommand inspect" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand inspect" -l connections -d 'One line per connection: ends, start, duration, bytes each way, how it ended'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l hex -d 'With --conn: show every chunk as a hex dump'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l text -d 'With --conn: show every chunk as text: UTF-8 characters as they are, control characters and bytes that are not UTF-8 as \'.\' (by default a chunk that is not UTF-8 text is shown as a hex dump, whose right column shows bytes outside 0x20-0x7e as \'.\')'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l full -d 'Show long command lines and every byte of a conversation on a terminal too (by default they are cut short there, saying how much is left out)'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l raw -d 'With --conn: write the exact bytes one side sent to stdout (needs --direction)'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l check -d 'Verify integrity and consistency: exit 0 when sound, 1 when not, saying what is wrong'
complete -c plg -n "__fish_plg_using_subcommand inspect" -l json -d 'Machine-readable output (docs/JSON.md)'
complete -c plg -n "__fish_plg_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand export" -l pcap -d 'Write a classic pcap (nanosecond timestamps, raw IPv4 link type)' -r -F
complete -c plg -n "__fish_plg_using_subcommand export" -l pcapng -d 'Write a standard pcapng, one interface per process, without plg\'s custom blocks' -r -F
complete -c plg -n "__fish_plg_using_subcommand export" -l streams -d 'Write each connection\'s bytes into DIR (new or empty), one file per direction, named NNNN-SENDER_ADDR.PORT-to-RECEIVER_ADDR.PORT (NNNN: the connection id on four digits; SENDER and RECEIVER: process names), e.g. 0000-p1_10.0.0.3.40000-to-p0_10.0.0.2.80. An IPv6 ADDR is written with - for each colon (fd00-706c-67--2), so no name holds a colon. A capture of several sections (sessions) prefixes the files of section N>1 with sN-' -r -F
complete -c plg -n "__fish_plg_using_subcommand export" -l conn -d 'Only this connection (repeat or separate with commas for several); `sN:ID` is connection ID of section N (captures concatenated), a bare ID the first section\'s' -r
complete -c plg -n "__fish_plg_using_subcommand export" -l process -d 'Only connections and packets of this process, by name (repeatable)' -r
complete -c plg -n "__fish_plg_using_subcommand export" -l port -d 'Only connections and UDP packets with this port at either end (repeatable)' -r
complete -c plg -n "__fish_plg_using_subcommand export" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand export" -l force -d 'Replace the output if it is an existing regular file (never a device, FIFO, symlink or directory: those are written into, followed, or refused)'
complete -c plg -n "__fish_plg_using_subcommand export" -s q -l quiet -d 'No progress bar and no closing line'
complete -c plg -n "__fish_plg_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand export" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand diff" -l ignore -d 'Byte ranges matching REGEX in both captures compare as equal (repeatable). Matched on bytes: `.` and `[^\\r]` match any byte' -r
complete -c plg -n "__fish_plg_using_subcommand diff" -l ignore-conn -d 'Leave out connections matching CLIENT->SERVER[:PORT][#N] (names, indexes or *; repeatable)' -r
complete -c plg -n "__fish_plg_using_subcommand diff" -l ignore-port -d 'Leave out connections to this server port, and UDP packets whose lower port is it (repeatable)' -r
complete -c plg -n "__fish_plg_using_subcommand diff" -l rules -d 'Read ignore rules from FILE (repeatable; format in docs/DIFF-RULES.md)' -r -F
complete -c plg -n "__fish_plg_using_subcommand diff" -l timing -d 'Also report connections whose duration or first-response delay drifted by more than PCT percent (durations under 1 ms are not compared)' -r
complete -c plg -n "__fish_plg_using_subcommand diff" -l max-diffs -d 'Show at most N differences per direction and flow (0: all)' -r
complete -c plg -n "__fish_plg_using_subcommand diff" -l junit -d 'Also write the report as JUnit XML to FILE, one test case per connection; `-` writes it to standard output instead of the text report' -r -F
complete -c plg -n "__fish_plg_using_subcommand diff" -s o -l output -d 'With --learn: write the rules to FILE (`-`: standard output, as without -o)' -r -F
complete -c plg -n "__fish_plg_using_subcommand diff" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand diff" -l json -d 'Print the report as JSON (docs/JSON.md) instead of text'
complete -c plg -n "__fish_plg_using_subcommand diff" -l learn -d 'Learn ignore rules from captures of one scenario taken with no code change, and write them (to --output, or standard output)'
complete -c plg -n "__fish_plg_using_subcommand diff" -l force -d 'Replace --junit or --output FILE if it is an existing regular file (a device, FIFO or symlink is written into or followed, never replaced)'
complete -c plg -n "__fish_plg_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand diff" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand wireshark" -l dir -d 'The plugin folder to use instead of Wireshark\'s personal Lua plugin folder ($HOME/.local/lib/wireshark/plugins)' -r -F
complete -c plg -n "__fish_plg_using_subcommand wireshark" -l color -d 'When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it), always, never' -r -f -a "auto\t'On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on'
always\t''
never\t''"
complete -c plg -n "__fish_plg_using_subcommand wireshark" -l install -d 'Copy the dissector into Wireshark\'s personal Lua plugin folder (replacing an older copy), and print where it went'
complete -c plg -n "__fish_plg_using_subcommand wireshark" -l print-path -d 'Print where --install puts the dissector'
complete -c plg -n "__fish_plg_using_subcommand wireshark" -l print -d 'Print the dissector (Lua) to standard output'
complete -c plg -n "__fish_plg_using_subcommand wireshark" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c plg -n "__fish_plg_using_subcommand wireshark" -s V -l version -d 'Print version'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "record" -d 'Run commands in private network namespaces and record every TCP conversation between them'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "replay" -d 'Feed a recording back to live programs, and play the peers that are not there'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "inspect" -d 'Show what a capture holds'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "export" -d 'Convert a capture to pcap, plain pcapng or stream files'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "diff" -d 'Compare two captures and report behavioural drift'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "wireshark" -d 'Print or install the Wireshark dissector for plg captures'
complete -c plg -n "__fish_plg_using_subcommand help; and not __fish_seen_subcommand_from record replay inspect export diff wireshark help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
