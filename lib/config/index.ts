export * from '../../contracts/config';
export * from './load';
