// qflow_tb_harness: the HDL side of the cocotb testbench (flow/tb/qflow_tb.py). Not part of any design.
//
// It wraps the design under test (module `QFLOW_DUT, with in_last when `QFLOW_STREAM is defined) so that the
// testbench never works per clock: Python fills two input banks of K_IN samples each and reads two output
// banks of K_OUT results each, one wide value per bank; everything per cycle happens here, the clock too.
//   * Clock: every edge comes in zero simulated time as soon as the previous one has settled, so a simulator
//     runs cycles as fast as it evaluates the design (no timer per edge, no Python per edge). The clock stops
//     while the harness waits for the testbench (no input bank for the next sample, no free output bank),
//     after BURST cycles (the testbench lets the next burst start: a simulator's evaluation loop stays
//     bounded, so Verilator's convergence limit still catches a design that never settles) and when it is
//     done (the last result plus tb_drain cycles, or a timeout): the design never sees how fast the testbench
//     is, so a run is cycle-exact for a seed whatever the simulator, the bank sizes or the host's load.
//   * Reset: the first 3 cycles after tb_go.
//   * Driver: offers the banks' samples in order, split into BEATS beats of BEAT_W bits (in_last on the last);
//     in_valid stays high until taken (AXI-Stream rule); random idle gaps (1 .. tb_max_gap cycles, starting
//     with probability tb_gap_thresh / 65536) between beats, from an xorshift32 seeded by tb_seed.
//   * Back-pressure: out_ready is high with probability tb_ready_thresh / 65536 each cycle (a second
//     xorshift32), always once tb_total results have arrived (so extra outputs are seen and counted).
//   * Monitor: each result is stored with the cycle its sample's last beat was taken and the cycle the
//     result was first shown, so the testbench computes latency and II; a bank is handed over (h_out_done
//     counts up) when full or when the last expected result arrived.
// Handshakes are counted by bank numbers: bank b is bank (b % 2); the testbench writes tb_in_filled after
// filling one (h_in_used counts those fully taken out) and tb_out_ack after reading one (h_out_done counts
// those handed over).
`timescale 1ns / 1ps
module qflow_tb_harness #(
    parameter BEAT_W = 8,  // bits of in_data
    parameter BEATS = 1,  // beats per sample
    parameter STRIDE = 8,  // bits per sample in an input bank (BEATS * BEAT_W rounded up to bytes)
    parameter OUT_W = 8,
    parameter CLS_W = 1,
    parameter E_W = 80,  // bits per result in an output bank: data, class, shown cycle, taken cycle (bytes)
    parameter K_IN = 4,
    parameter K_OUT = 4,
    parameter FIFO_AW = 4,  // log2 of the samples that can be in flight
    parameter BURST = 16384  // clock cycles at most between two wake-ups of the testbench
);
    // The testbench's side: settings and banks it writes (tb_*), state it reads (h_*). Plain variables, not
    // ports (Verilator copies every port on every evaluation), and the only ones visible to the testbench:
    // the build leaves out --public-flat-rw, which would make Verilator re-evaluate the whole design each time.
    reg tb_go /* verilator public_flat_rw */;  // written last: the clock starts
    reg [31:0] tb_seed /* verilator public_flat_rw */;
    reg [16:0] tb_gap_thresh /* verilator public_flat_rw */;
    reg [7:0] tb_max_gap /* verilator public_flat_rw */;
    reg [16:0] tb_ready_thresh /* verilator public_flat_rw */;
    reg [31:0] tb_total /* verilator public_flat_rw */;
    reg [31:0] tb_timeout /* verilator public_flat_rw */;
    reg [31:0] tb_drain /* verilator public_flat_rw */;  // cycles to watch for extra outputs after the last one
    reg [K_IN*STRIDE-1:0] tb_in0 /* verilator public_flat_rw */;
    reg [K_IN*STRIDE-1:0] tb_in1 /* verilator public_flat_rw */;
    reg [15:0] tb_in_n0 /* verilator public_flat_rw */;
    reg [15:0] tb_in_n1 /* verilator public_flat_rw */;
    reg [31:0] tb_in_filled /* verilator public_flat_rw */;
    reg [31:0] tb_out_ack /* verilator public_flat_rw */;
    reg [31:0] tb_burst_at /* verilator public_flat_rw */;  // the cycle at which the current burst started
    reg [31:0] h_in_used /* verilator public_flat_rw */;
    reg [K_OUT*E_W-1:0] h_out0 /* verilator public_flat_rw */;
    reg [K_OUT*E_W-1:0] h_out1 /* verilator public_flat_rw */;
    reg [15:0] h_out_n0 /* verilator public_flat_rw */;
    reg [15:0] h_out_n1 /* verilator public_flat_rw */;
    reg [31:0] h_out_done /* verilator public_flat_rw */;
    reg [31:0] h_got /* verilator public_flat_rw */;
    reg [31:0] h_extra /* verilator public_flat_rw */;
    reg [31:0] h_cycle /* verilator public_flat_rw */;
    reg h_timeout /* verilator public_flat_rw */;
    reg h_overflow /* verilator public_flat_rw */;
    reg h_finished /* verilator public_flat_rw */;
    // The clock waits for tb_go, which the testbench writes after its settings and first banks.
    initial begin
        tb_go = 1'b0;
        tb_seed = 32'd1;
        tb_gap_thresh = 17'd0;
        tb_max_gap = 8'd1;
        tb_ready_thresh = 17'd65536;
        tb_total = 32'd0;
        tb_timeout = 32'd10000;
        tb_drain = 32'd16;
        tb_in_filled = 32'd0;
        tb_out_ack = 32'd0;
        tb_burst_at = 32'd0;
        tb_in_n0 = 16'd0;
        tb_in_n1 = 16'd0;
        tb_in0 = {(K_IN * STRIDE) {1'b0}};
        tb_in1 = {(K_IN * STRIDE) {1'b0}};
        // What the testbench reads before the first edge (the reset clears them too).
        h_in_used = 32'd0;
        h_out_done = 32'd0;
        h_timeout = 1'b0;
        h_finished = 1'b0;
    end

    // ---- the clock. ph steps 0 -> 1 (rising edge: the design's registers update) -> 2 (falling edge) -> 0
    // (one more step: everything the edge changed has settled, so `waiting` reads final values), then the next
    // rising edge unless the harness waits for the testbench. Only the testbench's writes (tb_go, tb_in_filled,
    // tb_out_ack, tb_burst_at) restart a stopped clock; `waiting` reads them directly, never through a wire
    // that may lag.
    reg clk /* verilator public_flat_rw */ = 1'b0;
    reg [1:0] ph = 2'd0;
    always @(ph or tb_go or tb_in_filled or tb_out_ack or tb_burst_at) begin
        case (ph)
            2'd0: if (tb_go && !waiting(tb_in_filled, tb_out_ack, tb_burst_at)) begin
                clk <= 1'b1;
                ph <= 2'd1;
            end
            2'd1: begin
                clk <= 1'b0;
                ph <= 2'd2;
            end
            default: ph <= 2'd0;
        endcase
    end

    // ---- reset: the first 3 cycles
    reg [1:0] rst_n_cycles = 2'd0;
    wire rst = rst_n_cycles != 2'd3;
    always @(posedge clk) if (rst) rst_n_cycles <= rst_n_cycles + 2'd1;

    // ---- the design under test
    reg in_valid_r;
    reg out_ready_r;
    wire dut_in_ready;
    wire dut_out_valid;
    wire [OUT_W-1:0] dut_out_data;
    wire [CLS_W-1:0] dut_out_class;
    // The sample on offer, loaded from a bank when the previous one's last beat is taken (only then: the bank
    // variables are written from outside, so nothing combinational may depend on them but counters).
    reg [STRIDE-1:0] cur;
    reg cur_ok;
    reg [15:0] beat;
    wire [BEAT_W-1:0] in_data;
    wire in_last = beat == BEATS - 1;
    generate
        if (BEATS == 1) begin : g_whole
            assign in_data = cur[BEAT_W-1:0];
        end else begin : g_beats
            assign in_data = cur[beat*BEAT_W +: BEAT_W];
        end
    endgenerate
    `QFLOW_DUT dut (
        .clk(clk),
        .rst(rst),
        .in_valid(in_valid_r),
        .in_ready(dut_in_ready),
`ifdef QFLOW_STREAM
        .in_last(in_last),
`endif
        .in_data(in_data),
        .out_valid(dut_out_valid),
        .out_ready(out_ready_r),
        .out_data(dut_out_data),
        .out_class(dut_out_class)
    );

    // ---- random numbers (xorshift32), one step per cycle
    reg [31:0] rng_in;
    reg [31:0] rng_out;
    function [31:0] xorshift(input [31:0] v);
        reg [31:0] a;
        begin
            a = v ^ (v << 13);
            a = a ^ (a >> 17);
            xorshift = a ^ (a << 5);
        end
    endfunction

    // ---- driver: h_in_used counts banks loaded completely; ni is the next sample's place in bank h_in_used
    reg [7:0] gap;
    reg [15:0] ni;
    reg [31:0] loaded;  // samples loaded so far
    wire fire = in_valid_r && dut_in_ready;
    wire end_sample = fire && in_last;
    wire need = !cur_ok || end_sample;
    wire n_avail = tb_in_filled != h_in_used;
    wire load = need && n_avail;
    wire cur_ok_n = need ? n_avail : cur_ok;
    wire [15:0] bank_n = h_in_used[0] ? tb_in_n1 : tb_in_n0;
    wire gap_starts = {1'b0, rng_in[15:0]} < tb_gap_thresh;
    wire [7:0] gap_len = tb_max_gap > 8'd1 ? 8'd1 + rng_in[23:16] % tb_max_gap : 8'd1;
    always @(posedge clk) begin
        if (rst) begin
            rng_in <= tb_seed ^ 32'h9e3779b9;
            h_in_used <= 32'd0;
            ni <= 16'd0;
            loaded <= 32'd0;
            cur_ok <= 1'b0;
            beat <= 16'd0;
            gap <= 8'd0;
            in_valid_r <= 1'b0;
        end else begin
            rng_in <= xorshift(rng_in);
            if (fire) beat <= in_last ? 16'd0 : beat + 16'd1;
            if (load) begin
                cur <= h_in_used[0] ? tb_in1[ni*STRIDE +: STRIDE] : tb_in0[ni*STRIDE +: STRIDE];
                loaded <= loaded + 32'd1;
                if (ni == bank_n - 16'd1) begin
                    ni <= 16'd0;
                    h_in_used <= h_in_used + 32'd1;
                end else begin
                    ni <= ni + 16'd1;
                end
            end
            cur_ok <= cur_ok_n;
            if (!in_valid_r || fire) begin
                if (gap != 8'd0) begin
                    gap <= gap - 8'd1;
                    in_valid_r <= 1'b0;
                end else if (cur_ok_n && gap_starts) begin
                    gap <= gap_len - 8'd1;
                    in_valid_r <= 1'b0;
                end else begin
                    in_valid_r <= cur_ok_n;
                end
            end
        end
    end

    // ---- the cycles at which samples were taken (their last beat), in order
    reg [31:0] taken [0:(1<<FIFO_AW)-1];
    reg [FIFO_AW:0] wp;
    reg [FIFO_AW:0] rp;
    wire take_out = dut_out_valid && out_ready_r;
    always @(posedge clk) begin
        if (rst) begin
            wp <= 0;
            h_overflow <= 1'b0;
        end else if (end_sample) begin
            taken[wp[FIFO_AW-1:0]] <= h_cycle;
            wp <= wp + 1'b1;
            if (wp - rp == (1 << FIFO_AW) && !take_out) h_overflow <= 1'b1;
        end
    end

    // ---- monitor and back-pressure
    reg pending;
    reg [31:0] shown;
    reg [15:0] wr;
    reg [31:0] idle;
    reg [31:0] drained;  // cycles since the last expected result
    wire all_done = h_got >= tb_total;
    wire keep = take_out && !all_done;
    wire last_entry = wr == K_OUT - 1 || h_got == tb_total - 32'd1;
    wire [31:0] shown_now = pending ? shown : h_cycle;
    wire [E_W-1:0] entry = {{(E_W - 64 - CLS_W - OUT_W) {1'b0}}, taken[rp[FIFO_AW-1:0]], shown_now, dut_out_class,
                            dut_out_data};
    wire [31:0] done_n = h_out_done + {31'd0, keep && last_entry};
    wire [31:0] got_n = h_got + {31'd0, keep};
    wire ready_draw = {1'b0, rng_out[31:16]} < tb_ready_thresh;
    always @(posedge clk) begin
        if (rst) begin
            rng_out <= ~tb_seed ^ 32'h85ebca6b;
            h_cycle <= 32'd0;
            pending <= 1'b0;
            out_ready_r <= 1'b0;
            wr <= 16'd0;
            rp <= 0;
            idle <= 32'd0;
            h_got <= 32'd0;
            h_extra <= 32'd0;
            h_out_done <= 32'd0;
            h_out0 <= {(K_OUT * E_W) {1'b0}};  // entries past a bank's count are read too: no X there
            h_out1 <= {(K_OUT * E_W) {1'b0}};
            h_timeout <= 1'b0;
            drained <= 32'd0;
            h_finished <= 1'b0;
        end else begin
            rng_out <= xorshift(rng_out);
            h_cycle <= h_cycle + 32'd1;
            pending <= dut_out_valid && !take_out;
            if (dut_out_valid && !pending) shown <= h_cycle;
            if (take_out && all_done) h_extra <= h_extra + 32'd1;
            if (keep) begin
                if (h_out_done[0]) h_out1[wr*E_W +: E_W] <= entry;
                else h_out0[wr*E_W +: E_W] <= entry;
                rp <= rp + 1'b1;
                h_got <= got_n;
                if (last_entry) begin
                    if (h_out_done[0]) h_out_n1 <= wr + 16'd1;
                    else h_out_n0 <= wr + 16'd1;
                    h_out_done <= done_n;
                    wr <= 16'd0;
                end else begin
                    wr <= wr + 16'd1;
                end
            end
            if (take_out || all_done) idle <= 32'd0;
            else if (idle == tb_timeout) h_timeout <= 1'b1;
            else idle <= idle + 32'd1;
            if (all_done) begin
                if (drained == tb_drain) h_finished <= 1'b1;
                else drained <= drained + 32'd1;
            end
            out_ready_r <= got_n >= tb_total || ready_draw;
        end
    end

    // The harness needs the testbench before the next edge (or is done): the driver needs a sample and no bank
    // is filled, or both output banks are handed over and unread, or the burst is over. Nothing to wait for in
    // reset.
    function waiting(input [31:0] filled, input [31:0] acked, input [31:0] burst_at);
        waiting = !rst && (h_finished || h_timeout || h_out_done - acked >= 32'd2 || h_cycle - burst_at >= BURST
                           || (need && loaded < tb_total && filled == h_in_used));
    endfunction
endmodule
