// The synthetic scenes live with the code: the demo draws its passing cars with them too.
export * from '../../src/anpr/synthetic.js';
