-- plg.lua: Wireshark/tshark dissector for plg's records in a .traffic capture.
--
-- A .traffic file is pcapng; plg keeps its session, processes, connections and the bytes of
-- every TCP conversation in pcapng Custom Blocks (type 0x00000BAD, PEN 32473) whose layout is
-- docs/FORMAT.md in plg's repository. Without this file Wireshark lists them as opaque custom
-- blocks; with it each one shows as protocol "plg" with a readable Info line, every field by
-- name (filter on plg.conn, plg.dir, plg.kind, ...), and each Data record's bytes are handed to
-- the dissector registered for the server's TCP port (HTTP, RESP, PostgreSQL, ...), so `http`
-- and `resp` display filters work on a .traffic file too.
--
-- Install: `plg wireshark --install` (copies this file into Wireshark's personal Lua plugin
-- folder), or copy it there yourself (Help > About Wireshark > Folders > Personal Lua Plugins),
-- or load it for one run: `tshark -X lua_script:plg.lua -r capture.traffic`.
--
-- How it hooks in. Wireshark 4.0 (Debian 12) has no dissector table for custom blocks: it hands
-- their data to the "data" dissector. So on 4.0 this is a post-dissector that acts only on
-- frames whose frame.cb_pen is 32473. Later Wireshark versions have a "pcapng_custom_block"
-- table keyed on the PEN; where it exists, the dissector registers there instead.
--
-- Time. pcapng custom blocks carry no timestamp, so Wireshark's Time column stays empty for
-- them (a dissector cannot set a frame's time). Every plg event has its own time: it is the
-- field plg.time (absolute) and plg.reltime (since the session started), and the Info line
-- starts with the latter. To see it as a column: right-click "Time since session start" in the
-- detail pane, Apply as Column.
--
-- Byte order. plg writes little-endian sections; a big-endian section (allowed by the format)
-- is recognised from the kind field (every kind is below 256, so a big-endian kind starts with
-- a zero byte).

-- Installed as a plugin and also given with -X lua_script: load once (Wireshark would refuse
-- to register the protocol a second time).
if rawget(_G, "plg_dissector_loaded") then return end
rawset(_G, "plg_dissector_loaded", true)

local PEN = 32473

local plg = Proto("plg", "plg (Net Playground) record")

local KINDS = {
    [1] = "Session", [2] = "Process", [3] = "ProcessExit", [4] = "ConnOpen",
    [5] = "Data", [6] = "ConnClose", [7] = "Summary",
}
local MODES = { [0] = "plg record", [1] = "plg replay -o" }
local EXIT_HOW = { [0] = "exited", [1] = "killed by signal" }
local OUTCOMES = { [0] = "established", [1] = "refused", [2] = "unreachable" }
local DIRS = { [0] = "c2s", [1] = "s2c" }
local CLOSE_HOW = { [0] = "FIN", [1] = "RST" }
local OUTSIDE = 65535

local f = {
    kind = ProtoField.uint16("plg.kind", "Kind", base.DEC, KINDS),
    flags = ProtoField.uint16("plg.flags", "Flags (reserved)", base.HEX),
    body_len = ProtoField.uint32("plg.body_len", "Body length", base.DEC),
    time = ProtoField.absolute_time("plg.time", "Time", base.UTC),
    reltime = ProtoField.relative_time("plg.reltime", "Time since session start"),
    -- Session
    version = ProtoField.uint16("plg.session.version", "Format version", base.DEC),
    mode = ProtoField.uint8("plg.session.mode", "Mode", base.DEC, MODES),
    prefix_len = ProtoField.uint8("plg.session.prefix_len", "Subnet prefix length", base.DEC),
    subnet = ProtoField.ipv4("plg.session.subnet", "Subnet"),
    start = ProtoField.absolute_time("plg.session.start", "Session start", base.UTC),
    plg_version = ProtoField.string("plg.session.plg_version", "Written by plg"),
    -- Process and ProcessExit
    proc = ProtoField.uint16("plg.process", "Process index", base.DEC),
    live = ProtoField.bool("plg.process.live", "Live (it ran; false: replay played it)"),
    reserved = ProtoField.bytes("plg.reserved", "Reserved"),
    addr = ProtoField.ipv4("plg.process.addr", "Address"),
    name = ProtoField.string("plg.process.name", "Name"),
    command = ProtoField.string("plg.process.command", "Command"),
    exit_how = ProtoField.uint8("plg.exit.how", "How it ended", base.DEC, EXIT_HOW),
    exit_code = ProtoField.int32("plg.exit.code", "Exit code or signal", base.DEC),
    -- Connections
    conn = ProtoField.uint32("plg.conn", "Connection", base.DEC),
    client = ProtoField.uint16("plg.client", "Client process", base.DEC),
    server = ProtoField.uint16("plg.server", "Server process", base.DEC),
    client_name = ProtoField.string("plg.client.name", "Client"),
    server_name = ProtoField.string("plg.server.name", "Server"),
    client_addr = ProtoField.ipv4("plg.client.addr", "Client address"),
    server_addr = ProtoField.ipv4("plg.server.addr", "Server address"),
    -- Format 2: an IPv6 connection appends its family and IPv6 addresses
    family = ProtoField.uint8("plg.family", "Address family", base.DEC),
    client_addr6 = ProtoField.ipv6("plg.client.addr6", "Client IPv6 address"),
    server_addr6 = ProtoField.ipv6("plg.server.addr6", "Server IPv6 address"),
    client_port = ProtoField.uint16("plg.client.port", "Client port", base.DEC),
    server_port = ProtoField.uint16("plg.server.port", "Server port", base.DEC),
    outcome = ProtoField.uint8("plg.outcome", "Outcome", base.DEC, OUTCOMES),
    dir = ProtoField.string("plg.dir", "Direction (c2s: client to server, s2c: server to client)"),
    len = ProtoField.uint32("plg.len", "Payload length", base.DEC),
    payload = ProtoField.bytes("plg.payload", "Payload"),
    close_how = ProtoField.uint8("plg.close.how", "How", base.DEC, CLOSE_HOW),
    -- Summary
    end_time = ProtoField.absolute_time("plg.summary.end", "End time", base.UTC),
    s_procs = ProtoField.uint32("plg.summary.processes", "Processes", base.DEC),
    s_conns = ProtoField.uint32("plg.summary.connections", "Connections", base.DEC),
    s_refused = ProtoField.uint32("plg.summary.refused", "Refused connections", base.DEC),
    s_reset = ProtoField.uint32("plg.summary.reset", "Connections reset", base.DEC),
    s_data = ProtoField.uint64("plg.summary.data_blocks", "Data blocks", base.DEC),
    s_c2s = ProtoField.uint64("plg.summary.bytes_c2s", "Bytes client to server", base.DEC),
    s_s2c = ProtoField.uint64("plg.summary.bytes_s2c", "Bytes server to client", base.DEC),
    s_packets = ProtoField.uint64("plg.summary.packets", "Packets (EPBs)", base.DEC),
    s_ipv6 = ProtoField.uint64("plg.summary.ipv6_dropped", "IPv6 packets dropped", base.DEC),
}
plg.fields = f

local ef_malformed = ProtoExpert.new("plg.malformed", "Malformed plg record",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_unknown = ProtoExpert.new("plg.unknown_kind", "plg record of a kind this dissector does not know",
    expert.group.UNDECODED, expert.severity.NOTE)
plg.experts = { ef_malformed, ef_unknown }

-- What earlier records said, for naming later ones. Filled on the first (in-order) pass and
-- cleared when a file is (re)opened; a record refers only to earlier ones, so later random
-- access (clicking a packet) finds them here.
-- Each pcapng section (two captures concatenated) has its own session, processes and
-- connection ids, so everything is kept per section number.
local sections = {}
local section_number = Field.new("frame.section_number")

function plg.init()
    sections = {}
end

-- The tables of the current frame's section: start (session start), procs (index -> {name,
-- addr}), conns (id -> {client, server, caddr, saddr, cport, sport}).
local session_start, procs, conns
local function enter_section()
    local f = section_number()
    local n = f and f.value or 1
    local s = sections[n]
    if s == nil then
        s = { start = nil, procs = {}, conns = {} }
        sections[n] = s
    end
    session_start, procs, conns = s.start, s.procs, s.conns
    return s
end

local function proc_name(index)
    if index == OUTSIDE then return "outside" end
    local p = procs[index]
    return p and p.name or ("process " .. index)
end

-- Readers in the section's byte order.
local function reader(tvb)
    local be = tvb:len() >= 2 and tvb(0, 1):uint() == 0 and tvb(1, 1):uint() ~= 0
    local r = {}
    function r.u(off, n) local t = tvb(off, n); return be and t:uint() or t:le_uint() end
    function r.i32(off) local t = tvb(off, 4); return be and t:int() or t:le_int() end
    function r.u64(off) local t = tvb(off, 8); return be and t:uint64() or t:le_uint64() end
    function r.add(tree, field, off, n, value)
        if value ~= nil then return tree:add(field, tvb(off, n), value) end
        if be then return tree:add(field, tvb(off, n)) end
        return tree:add_le(field, tvb(off, n))
    end
    return r
end

local function nstime(ns)
    return NSTime.new((ns / 1000000000):tonumber(), (ns % 1000000000):tonumber())
end

local function add_time(r, tree, off, field)
    local ns = r.u64(off)
    local t = nstime(ns)
    r.add(tree, field or f.time, off, 8, t)
    return t
end

local function rel(t)
    if session_start == nil then return nil end
    return t - session_start
end

-- A u16 length then UTF-8; returns the string and the offset after it.
local function add_str16(r, tvb, tree, field, off)
    local n = r.u(off, 2)
    local s = tvb(off + 2, n):string(ENC_UTF_8)
    tree:add(field, tvb(off, 2 + n), s)
    return s, off + 2 + n
end

-- "1 connection", "2 connections": the singular for one, as plg's own text says.
local function count(n, one, many)
    if n == 1 then
        return "1 " .. one
    end
    return string.format("%d %s", n, many)
end

local function info_time(t)
    local d = rel(t)
    if d == nil then return "" end
    return string.format("+%.6f ", d:tonumber())
end

local function set_addrs(pinfo, src, dst, sport, dport)
    if string.find(src, ":", 1, true) then
        pinfo.src = Address.ipv6(src)
        pinfo.dst = Address.ipv6(dst)
    else
        pinfo.src = Address.ip(src)
        pinfo.dst = Address.ip(dst)
    end
    pinfo.src_port = sport
    pinfo.dst_port = dport
end

local function ip_string(tvb, off)
    return tostring(tvb(off, 4):ipv4())
end

local tcp_port_table = DissectorTable.get("tcp.port")

-- Dissects one record: `tvb` starts at the custom block's kind field (what Wireshark passes).
local function dissect_record(tvb, pinfo, tree)
    local section = enter_section()
    pinfo.cols.protocol = "plg"
    local st = tree:add(plg, tvb())
    if tvb:len() < 8 then
        st:add_proto_expert_info(ef_malformed, "shorter than a plg record header")
        pinfo.cols.info = "malformed plg record"
        return
    end
    local r = reader(tvb)
    local kind = r.u(0, 2)
    r.add(st, f.kind, 0, 2)
    r.add(st, f.flags, 2, 2)
    r.add(st, f.body_len, 4, 4)
    local body_len = r.u(4, 4)
    if body_len > tvb:len() - 8 then
        st:add_proto_expert_info(ef_malformed, "body length overruns the block")
        pinfo.cols.info = "malformed plg record"
        return
    end
    local b = tvb(8, body_len):tvb()
    local br = reader(tvb) -- same byte order, offsets shifted by 8
    local function u(off, n) return br.u(8 + off, n) end
    local function add(field, off, n, value) return br.add(st, field, 8 + off, n, value) end
    local name = KINDS[kind]
    if name then st:append_text(", " .. name) end

    local ok, err = pcall(function()
        if kind == 1 then
            add(f.version, 0, 2)
            add(f.mode, 2, 1)
            add(f.prefix_len, 3, 1)
            st:add(f.subnet, tvb(12, 4))
            session_start = add_time(br, st, 16, f.start)
            section.start = session_start
            local v = add_str16(br, tvb, st, f.plg_version, 24)
            local mode = MODES[u(2, 1)] or "?"
            pinfo.cols.info = string.format("session: %s, subnet %s/%d, written by plg %s",
                mode, ip_string(tvb, 12), u(3, 1), v)
        elseif kind == 2 then
            local index = u(0, 2)
            add(f.proc, 0, 2)
            st:add(f.live, tvb(10, 1), u(2, 1) == 1)
            st:add(f.addr, tvb(12, 4))
            local pname, off = add_str16(br, tvb, st, f.name, 16)
            local cmd = add_str16(br, tvb, st, f.command, off)
            procs[index] = { name = pname, addr = ip_string(tvb, 12) }
            pinfo.src = Address.ip(ip_string(tvb, 12))
            pinfo.cols.info = string.format("process %d %s %s: %s", index, pname,
                ip_string(tvb, 12), cmd)
        elseif kind == 3 then
            local t = add_time(br, st, 8)
            if rel(t) then st:add(f.reltime, tvb(8, 8), rel(t)):set_generated() end
            local index = u(8, 2)
            add(f.proc, 8, 2)
            st:add(f.name, proc_name(index)):set_generated()
            add(f.exit_how, 10, 1)
            add(f.exit_code, 12, 4)
            local code = br.i32(8 + 12)
            if procs[index] then pinfo.src = Address.ip(procs[index].addr) end
            if u(10, 1) == 1 then
                pinfo.cols.info = string.format("%s%s killed by signal %d", info_time(t), proc_name(index), code)
            else
                pinfo.cols.info = string.format("%s%s exited %d", info_time(t), proc_name(index), code)
            end
        elseif kind == 4 then
            local t = add_time(br, st, 8)
            if rel(t) then st:add(f.reltime, tvb(8, 8), rel(t)):set_generated() end
            local id = u(8, 4)
            add(f.conn, 8, 4)
            local c, s = u(12, 2), u(14, 2)
            add(f.client, 12, 2)
            st:add(f.client_name, proc_name(c)):set_generated()
            add(f.server, 14, 2)
            st:add(f.server_name, proc_name(s)):set_generated()
            st:add(f.client_addr, tvb(24, 4))
            st:add(f.server_addr, tvb(28, 4))
            add(f.client_port, 24, 2)
            add(f.server_port, 26, 2)
            add(f.outcome, 28, 1)
            local conn = {
                client = c, server = s, caddr = ip_string(tvb, 24), saddr = ip_string(tvb, 28),
                cport = u(24, 2), sport = u(26, 2),
            }
            if body_len >= 68 and u(32, 1) == 6 then
                add(f.family, 32, 1)
                st:add(f.client_addr6, tvb(44, 16))
                st:add(f.server_addr6, tvb(60, 16))
                conn.caddr = tostring(tvb(44, 16):ipv6())
                conn.saddr = tostring(tvb(60, 16):ipv6())
            end
            conns[id] = conn
            set_addrs(pinfo, conn.caddr, conn.saddr, conn.cport, conn.sport)
            local outcome = u(28, 1)
            local what = outcome == 0 and "open" or (OUTCOMES[outcome] or "?")
            pinfo.cols.info = string.format("%sconn %d %s:%d -> %s:%d %s", info_time(t), id,
                proc_name(c), conn.cport, proc_name(s), conn.sport, what)
        elseif kind == 5 then
            local t = add_time(br, st, 8)
            if rel(t) then st:add(f.reltime, tvb(8, 8), rel(t)):set_generated() end
            local id = u(8, 4)
            add(f.conn, 8, 4)
            local dir = u(12, 1)
            st:add(f.dir, tvb(20, 1), DIRS[dir] or "?")
            local n = body_len - 16
            st:add(f.len, tvb(4, 4), n):set_generated()
            local conn = conns[id]
            local from, to = "?", "?"
            if conn then
                st:add(f.client_name, proc_name(conn.client)):set_generated()
                st:add(f.server_name, proc_name(conn.server)):set_generated()
                if dir == 0 then
                    from, to = proc_name(conn.client), proc_name(conn.server)
                    set_addrs(pinfo, conn.caddr, conn.saddr, conn.cport, conn.sport)
                else
                    from, to = proc_name(conn.server), proc_name(conn.client)
                    set_addrs(pinfo, conn.saddr, conn.caddr, conn.sport, conn.cport)
                end
            end
            local info = string.format("%sconn %d %s -> %s %d B", info_time(t), id, from, to, n)
            if n > 0 then
                local payload = tvb(24, n)
                st:add(f.payload, payload)
                -- Hand the bytes to whatever dissects the server's (or client's) TCP port,
                -- as TCP would: HTTP, RESP, PGSQL, ... ("Decode As" on tcp.port applies too),
                -- then to TCP's heuristic dissectors.
                local handled = 0
                if conn then
                    local sub_tvb = payload:tvb("plg payload")
                    pinfo.cols.protocol = ""
                    pinfo.cols.info = ""
                    local ok2, res = pcall(function()
                        local d = tcp_port_table:get_dissector(conn.sport)
                            or tcp_port_table:get_dissector(conn.cport)
                        if d then return d:call(sub_tvb, pinfo, tree) end
                        if DissectorTable.try_heuristics("tcp", sub_tvb, pinfo, tree) then
                            return sub_tvb:len()
                        end
                        return 0
                    end)
                    if ok2 and res and res > 0 then handled = res end
                end
                local proto = tostring(pinfo.cols.protocol)
                local sub = tostring(pinfo.cols.info)
                -- The sub-dissector may have fenced the columns; the plg text goes first.
                pinfo.cols.protocol:clear_fence()
                pinfo.cols.info:clear_fence()
                if handled > 0 and proto ~= "" then
                    pinfo.cols.protocol = "plg/" .. proto
                    sub = sub:gsub("%s+$", "")
                    if sub ~= "" then info = info .. "  " .. sub end
                else
                    pinfo.cols.protocol = "plg"
                end
            end
            pinfo.cols.info = info
        elseif kind == 6 then
            local t = add_time(br, st, 8)
            if rel(t) then st:add(f.reltime, tvb(8, 8), rel(t)):set_generated() end
            local id = u(8, 4)
            add(f.conn, 8, 4)
            local dir = u(12, 1)
            st:add(f.dir, tvb(20, 1), DIRS[dir] or "?")
            add(f.close_how, 13, 1)
            local conn = conns[id]
            local who = "?"
            if conn then
                who = proc_name(dir == 0 and conn.client or conn.server)
                if dir == 0 then
                    set_addrs(pinfo, conn.caddr, conn.saddr, conn.cport, conn.sport)
                else
                    set_addrs(pinfo, conn.saddr, conn.caddr, conn.sport, conn.cport)
                end
            end
            local how = u(13, 1) == 1 and "reset (RST)" or "closed (FIN)"
            pinfo.cols.info = string.format("%sconn %d %s %s", info_time(t), id, who, how)
        elseif kind == 7 then
            local t = add_time(br, st, 8, f.end_time)
            add(f.s_procs, 8, 4)
            add(f.s_conns, 12, 4)
            add(f.s_refused, 16, 4)
            add(f.s_reset, 20, 4)
            add(f.s_data, 24, 8)
            add(f.s_c2s, 32, 8)
            add(f.s_s2c, 40, 8)
            add(f.s_packets, 48, 8)
            add(f.s_ipv6, 56, 8)
            pinfo.cols.info = string.format("%ssummary: %s, %s, %s B c2s, %s B s2c",
                info_time(t), count(u(8, 4), "process", "processes"),
                count(u(12, 4), "connection", "connections"),
                tostring(br.u64(8 + 32)), tostring(br.u64(8 + 40)))
        else
            st:add_proto_expert_info(ef_unknown, "kind " .. kind)
            pinfo.cols.info = "plg record of unknown kind " .. kind
        end
    end)
    if not ok then
        st:add_proto_expert_info(ef_malformed, tostring(err))
        pinfo.cols.info = "malformed plg " .. (name or "record")
    end
end

local cb_table = DissectorTable.get("pcapng_custom_block")
if cb_table then
    -- Wireshark 4.2 and later: custom blocks are dispatched by PEN.
    function plg.dissector(tvb, pinfo, tree)
        dissect_record(tvb, pinfo, tree)
        return tvb:len()
    end
    cb_table:add(PEN, plg)
else
    -- Wireshark 4.0: every frame comes here after the other dissectors; act on ours only.
    local cb_pen = Field.new("frame.cb_pen")
    function plg.dissector(tvb, pinfo, tree)
        local pen = cb_pen()
        if pen == nil or pen.value ~= PEN then return 0 end
        dissect_record(tvb, pinfo, tree)
        return tvb:len()
    end
    register_postdissector(plg)
end
